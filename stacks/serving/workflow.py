"""The deploy state machine: put one registered model on the endpoint without downtime.

Input `{"modelId": "<id>"}`. Steps: take the deployment lock (one deployment at a time),
create the SageMaker model and endpoint config (once per model), create the endpoint or update
it (SageMaker keeps the old model serving until the new one is InService), poll
DescribeEndpoint every `poll_interval_s` (bounded by `max_polls`), then apply autoscaling, mark
the model live, retire the previous one, point `__live__` at it, notify, release the lock. Any
failure marks the model failed with the reason, notifies, releases the lock and leaves the live
model as it was.

The endpoint is asynchronous (AsyncInferenceConfig: answers and failures written under the data
bucket's inference/ prefix, SNS success and error notices, one request at a time per instance);
SageMaker keeps queueing requests during the update and the old model serves until the new one
is InService.

The same input for the model that is live already (`__live__` points at it) re-creates its
endpoint after it was deleted out of band (the API and its dispatcher start this, see
stacks/api/runtime/endpoint.py): the model stays `live` throughout, and a failure is recorded on the
`__live__` pointer (`endpointError`) and notified, never by marking the live model failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from aws_cdk import Aws, Duration, Stack, Token
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from stacks.config import STACK_TAG_KEY
from stacks.contract import (
    DEPLOY_LOCK_ID,
    LIVE_POINTER_ID,
    STATUS_DEPLOYING,
    STATUS_FAILED,
    STATUS_LIVE,
    STATUS_RETIRED,
    VARIANT_NAME,
)
from stacks.registry.construct import DISCARD as _DISCARD
from stacks.registry.construct import NOW as _NOW
from stacks.registry.construct import S
from stacks.registry.construct import str_at as _str

# A deployment waiting for another one checks the lock at most MAX_LOCK_CHECKS times, spaced (at
# least LOCK_RETRY_S apart, or as often as the endpoint is polled) to cover the longest time the
# holder can keep it: its busy-endpoint wait and its endpoint wait, each up to max_polls
# intervals, plus LOCK_HOLD_MARGIN_S for its other steps. Then it gives up, and says so.
LOCK_RETRY_S = 30
# Asynchronous inference: one request at a time per instance (a T4 draws one image at a time).
MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE = 1
MAX_LOCK_CHECKS = 200
LOCK_HOLD_MARGIN_S = 600
# The loops of the chain, by state name, for the history-event budget (sfn_budget.py). Where a loop
# has two ways round, both are listed; the longer counts.
LOCK_LOOPS = (
    ("AcquireLock", "ReadLock", "IsLockHeld", "DescribeLockOwner", "IsLockHolderRunning",
     "CountLockCheck", "IsLockWaitOver", "WaitForOtherDeployment"),
    ("AcquireLock", "ReadLock", "IsLockHeld", "CountLockRetry", "IsLockRetryOver"),
)
BUSY_LOOPS = (
    ("DescribeEndpoint", "WhatIsTheEndpointDoing", "CountBusyWait", "IsBusyWaitOver", "WaitForBusyEndpoint"),
    ("DescribeEndpoint", "WhatIsTheEndpointDoing", "DeleteFailedEndpoint", "CountBusyWait", "IsBusyWaitOver",
     "WaitForBusyEndpoint"),
)
POLL_LOOPS = (
    ("WaitForEndpoint", "CheckEndpoint", "IsNewModelServing", "CountPoll"),
    ("WaitForEndpoint", "PollEndpointInstead", "CheckEndpoint", "IsNewModelServing", "CountPoll"),
)


def lock_retry_s(poll_interval_s: int, max_polls: int) -> int:
    holder_max_s = 2 * poll_interval_s * max_polls + LOCK_HOLD_MARGIN_S
    return max(min(poll_interval_s, LOCK_RETRY_S), math.ceil(holder_max_s / MAX_LOCK_CHECKS))


@dataclass(frozen=True)
class HistoryBudget:
    """What one deployment can write to its execution history (see sfn_budget.py)."""

    straight: int
    """Every state once."""
    lock_turn: int
    busy_turn: int
    poll_turn: int
    lock_turns: int = MAX_LOCK_CHECKS

    def total(self, max_polls: int) -> int:
        """The worst case with `max_polls` endpoint checks and as many busy-endpoint waits."""
        return self.straight + self.lock_turn * self.lock_turns + (self.busy_turn + self.poll_turn) * max_polls

    @classmethod
    def of(cls, graph: Mapping[str, Any]) -> "HistoryBudget":
        from stacks.shared import sfn_budget

        def turn(loops: tuple[tuple[str, ...], ...]) -> int:
            return max(sfn_budget.cycle_events(graph, loop) for loop in loops)

        return cls(straight=sfn_budget.straight_events(graph), lock_turn=turn(LOCK_LOOPS),
                   busy_turn=turn(BUSY_LOOPS), poll_turn=turn(POLL_LOOPS))
# Added to the JumpStart hosting spec's environment (from the lock): room for several base64
# JPEGs in one answer (the public samples set it).
EXTRA_INFERENCE_ENVIRONMENT = {"MMS_MAX_RESPONSE_SIZE": "20000000"}



class DeployWorkflow(Construct):
    """Builds the deploy chain; `definition` is the first state (see module docstring).

    Props:
      registry_table / state_table: see ModelRegistry.
      topic: where outcomes are published.
      endpoint_name: the one endpoint (created at run time).
      hosting_role: role the SageMaker model runs with.
      inference_image: container image URI (from the JumpStart lock).
      inference_environment: the container environment of JumpStart's hosting spec (from the lock).
      instance_type: endpoint instance type.
      poll_interval_s / max_polls: DescribeEndpoint cadence when no state-change event comes, and
        the bound on the number of checks.
      park_function: stores the wait's task token for the endpoint state-change handler.
      lock_owner_arn_pattern: ARN pattern of this state machine's executions (to tell a live
        lock holder from a dead one).
      scaling_function: registers the endpoint variant's autoscaling after InService
        ({"action": "register"}) and removes it before an UpdateEndpoint ({"action": "deregister"}).
      async_output: where SageMaker writes answers and failures (S3 URIs) and the SNS topics it
        notifies on success and on error (`AsyncOutput`).
      initial_instance_count: instances of a new endpoint config (autoscaling takes over). Default 1.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        registry_table: dynamodb.ITable,
        state_table: dynamodb.ITable,
        topic: sns.ITopic,
        endpoint_name: str,
        hosting_role: iam.IRole,
        inference_image: str,
        inference_environment: Mapping[str, str],
        instance_type: str,
        poll_interval_s: int,
        max_polls: int,
        lock_owner_arn_pattern: str,
        park_function: lambda_.IFunction,
        scaling_function: lambda_.IFunction,
        async_output: "AsyncOutput",
        initial_instance_count: int = 1,
    ) -> None:
        super().__init__(scope, construct_id)
        self._registry = registry_table
        self._state = state_table
        self._topic = topic
        self._endpoint_name = endpoint_name
        self.poll_interval_s = poll_interval_s
        self.max_polls = max_polls
        self._scaling_function = scaling_function

        fail = sfn.Fail(self, "DeploymentFailed", error="DeploymentFailed", cause="See the model's failureReason")
        release_after_failure = self._release_lock("ReleaseLockAfterFailure", then=fail)
        failure_chain = (
            self._registry_update(
                "MarkFailed",
                "SET #status = :failed, failureReason = :reason, updatedAt = :now",
                {":failed": S(STATUS_FAILED), ":reason": _str("$.failure.reason")},
            )
            .next(self._publish("NotifyFailure", "DreamBooth: deployment failed",
                                sfn.JsonPath.format("Model {} could not be put live: {}. The previously live model "
                                                    "(if any) is still serving.", sfn.JsonPath.string_at("$.modelId"),
                                                    sfn.JsonPath.string_at("$.failure.reason"))))
            .next(release_after_failure)
        )
        # The live model itself (its endpoint being re-created): it stays live, the pointer says what failed.
        live_failure_chain = (
            tasks.DynamoUpdateItem(
                self, "RecordEndpointError", table=registry_table, key={"modelId": S(LIVE_POINTER_ID)},
                update_expression="SET endpointError = :reason, endpointErrorAt = :now",
                expression_attribute_values={":reason": _str("$.failure.reason"), ":now": _str(_NOW)},
                result_path=_DISCARD,
            )
            .next(self._publish("NotifyEndpointNotRestored", "DreamBooth: endpoint could not be re-created",
                                sfn.JsonPath.format("Endpoint {} could not be re-created for the live model {}: {}. "
                                                    "The model stays live; generation requests stay queued and "
                                                    "the next request or the periodic check tries again.",
                                                    endpoint_name, sfn.JsonPath.string_at("$.modelId"),
                                                    sfn.JsonPath.string_at("$.failure.reason"))))
            .next(self._release_lock("ReleaseLockAfterEndpointError", then=sfn.Fail(
                self, "EndpointNotRestored", error="EndpointNotRestored",
                cause="See endpointError on the __live__ registry item")))
        )
        failure_chain = sfn.Choice(self, "IsTheLiveModel").when(_is_live_model(), live_failure_chain).otherwise(
            failure_chain)
        self._failure_chain = failure_chain

        def fail_with(state_id: str, reason: str) -> sfn.Pass:
            return sfn.Pass(self, state_id, parameters={"reason": reason}, result_path="$.failure").next(failure_chain)

        caught_error = sfn.Pass(
            self,
            "DescribeError",
            parameters={"reason": sfn.JsonPath.format("{}: {}", sfn.JsonPath.string_at("$.error.Error"),
                                                      sfn.JsonPath.string_at("$.error.Cause"))},
            result_path="$.failure",
        ).next(failure_chain)

        self._caught_error = caught_error

        def catch(state: Any) -> Any:
            state.add_catch(caught_error, errors=["States.ALL"], result_path="$.error")
            return state

        # ---- the lock ----
        # Every wait below is counted in `$.waits` and bounded: an execution may write at most
        # 25,000 history events, and a deployment must give up (and say so) long before that.
        start = sfn.Pass(self, "StartDeployment", result=sfn.Result.from_object({"lock": 0, "busy": 0}),
                         result_path="$.waits")
        acquire = self._acquire_lock()
        start.next(acquire)
        # No ResultSelector on the lock item: its holder may have released it between the failed
        # acquire and this read, and a missing `owner` would then stop the execution with
        # States.Runtime, which no Catch can intercept.
        read_lock = tasks.DynamoGetItem(
            self, "ReadLock", table=state_table, key={"pk": S(DEPLOY_LOCK_ID)}, consistent_read=True,
            result_path="$.lock",
        )
        lock_minutes = lock_retry_s(poll_interval_s, max_polls) * MAX_LOCK_CHECKS // 60
        lock_given_up = fail_with(
            "GaveUpWaitingForLock",
            f"another deployment kept the deployment lock for more than {lock_minutes} minutes (longer than one "
            "deployment can take); nothing was changed and the live model is untouched. Put the model live again "
            "once the other deployment has ended")

        def counted(count_id: str, choice_id: str, then: sfn.IChainable) -> sfn.Pass:
            """Count one more lock check; past MAX_LOCK_CHECKS give up, else go on to `then`."""
            count = sfn.Pass(self, count_id, parameters={
                "lock.$": "States.MathAdd($.waits.lock, 1)", "busy.$": "$.waits.busy"}, result_path="$.waits")
            count.next(sfn.Choice(self, choice_id)
                       .when(sfn.Condition.number_greater_than_equals("$.waits.lock", MAX_LOCK_CHECKS), lock_given_up)
                       .otherwise(then))
            return count

        retry_lock = counted("CountLockRetry", "IsLockRetryOver", acquire)
        describe_owner = tasks.CallAwsService(
            self, "DescribeLockOwner", service="sfn", action="describeExecution",
            parameters={"ExecutionArn": sfn.JsonPath.string_at("$.lock.Item.owner.S")},
            iam_resources=[lock_owner_arn_pattern], iam_action="states:DescribeExecution",
            result_selector={"status.$": "$.Status"}, result_path="$.lockOwner",
        )
        take_over = tasks.DynamoUpdateItem(
            self, "TakeOverLock", table=state_table, key={"pk": S(DEPLOY_LOCK_ID)},
            update_expression="SET #owner = :me, modelId = :model, since = :now",
            condition_expression="#owner = :dead",
            expression_attribute_names={"#owner": "owner"},
            expression_attribute_values={":me": _str("$$.Execution.Id"), ":model": _str("$.modelId"),
                                         ":now": _str(_NOW), ":dead": _str("$.lock.Item.owner.S")},
            result_path=_DISCARD,
        )
        wait_for_lock = sfn.Wait(self, "WaitForOtherDeployment", time=sfn.WaitTime.duration(
            Duration.seconds(lock_retry_s(poll_interval_s, max_polls))))
        check_lock_later = counted("CountLockCheck", "IsLockWaitOver", wait_for_lock)
        take_over.add_catch(retry_lock, errors=["DynamoDB.ConditionalCheckFailedException"], result_path=_DISCARD)
        describe_owner.add_catch(take_over, errors=["States.TaskFailed"], result_path=_DISCARD)
        read_lock.add_catch(retry_lock, errors=["States.ALL"], result_path=_DISCARD)
        acquire.add_catch(read_lock, errors=["DynamoDB.ConditionalCheckFailedException"], result_path=_DISCARD)
        # Released between the failed acquire and the read: try to acquire again.
        read_lock.next(sfn.Choice(self, "IsLockHeld")
                       .when(sfn.Condition.is_present("$.lock.Item.owner.S"), describe_owner)
                       .otherwise(retry_lock))
        wait_for_lock.next(acquire)
        describe_owner.next(
            sfn.Choice(self, "IsLockHolderRunning")
            .when(sfn.Condition.string_equals("$.lockOwner.status", "RUNNING"), check_lock_later)
            .otherwise(take_over)
        )

        # ---- the model ----
        read_model = tasks.DynamoGetItem(
            self, "ReadModel", table=registry_table, key={"modelId": _str("$.modelId")}, consistent_read=True,
            result_path="$.model",
        )
        catch(read_model)
        take_over.next(read_model)
        mark_deploying = catch(self._registry_update(
            "MarkDeploying", "SET #status = :deploying, updatedAt = :now REMOVE failureReason",
            {":deploying": S(STATUS_DEPLOYING)},
        ))
        # CustomState: CDK's SageMakerCreateModel task has no ModelDataSource. The model data is
        # the uncompressed training output (with code/inference.py, see model_package.py),
        # served as an S3 prefix. IAM in grant_create_model.
        self._hosting_role = hosting_role
        create_model = catch(sfn.CustomState(self, "CreateModel", state_json={
            "Type": "Task",
            "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createModel",
            "Parameters": {
                "ModelName.$": "$.modelId",
                "ExecutionRoleArn": hosting_role.role_arn,
                "PrimaryContainer": {
                    "Image": inference_image,
                    "Mode": "SingleModel",
                    "ModelDataSource": {"S3DataSource": {"S3Uri.$": "$.model.Item.artifactUri.S",
                                                         "S3DataType": "S3Prefix", "CompressionType": "None"}},
                    "Environment": {**inference_environment, **EXTRA_INFERENCE_ENVIRONMENT,
                                    "SAGEMAKER_REGION": Aws.REGION},
                },
                # A literal list (CDK's task inputs take only objects); IAM holds the role to tagged models.
                "Tags": self._stack_tags(),
            },
            # CreateModel answers {ModelArn}: kept (a null ResultPath is dropped from a CustomState).
            "ResultPath": "$.sagemakerModel",
        }))
        create_config = catch(tasks.CallAwsService(
            self, "CreateEndpointConfig", service="sagemaker", action="createEndpointConfig",
            parameters={
                "EndpointConfigName": sfn.JsonPath.string_at("$.modelId"),
                "ProductionVariants": [{
                    "VariantName": VARIANT_NAME, "ModelName": sfn.JsonPath.string_at("$.modelId"),
                    "InstanceType": instance_type, "InitialInstanceCount": initial_instance_count,
                }],
                # Models and endpoint configs carry the stack's name: IAM then holds this stack to its own.
                "Tags": [{"Key": STACK_TAG_KEY, "Value": Stack.of(self).stack_name}],
                "AsyncInferenceConfig": {
                    "ClientConfig": {"MaxConcurrentInvocationsPerInstance": MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE},
                    "OutputConfig": {
                        "S3OutputPath": async_output.output_uri, "S3FailurePath": async_output.failure_uri,
                        "NotificationConfig": {"SuccessTopic": async_output.success_topic.topic_arn,
                                               "ErrorTopic": async_output.error_topic.topic_arn},
                    },
                },
            },
            iam_resources=[Stack.of(self).format_arn(service="sagemaker", resource="endpoint-config",
                                                     resource_name="*")],
            iam_action="sagemaker:CreateEndpointConfig",
            result_path=_DISCARD,
        ))
        record_names = catch(self._registry_update(
            "RecordSageMakerNames", "SET sagemakerModelName = :name, endpointConfigName = :name, updatedAt = :now",
            {":name": _str("$.modelId")},
        ))

        # ---- the endpoint ----
        describe = self._describe_endpoint("DescribeEndpoint", "$.endpoint")
        create_endpoint = catch(tasks.SageMakerCreateEndpoint(
            self, "CreateEndpoint", endpoint_name=endpoint_name,
            endpoint_config_name=sfn.JsonPath.string_at("$.modelId"), result_path=_DISCARD,
        ))
        update_endpoint = catch(tasks.SageMakerUpdateEndpoint(
            self, "UpdateEndpoint", endpoint_name=endpoint_name,
            endpoint_config_name=sfn.JsonPath.string_at("$.modelId"), result_path=_DISCARD,
        ))
        # An update that changes the instance type fails while the variant is a scalable target:
        # autoscaling is removed first and registered again once the new config is InService.
        remove_scaling = catch(self._scaling_task("RemoveAutoscaling", "deregister"))
        remove_scaling.next(update_endpoint)
        delete_failed = catch(tasks.CallAwsService(
            self, "DeleteFailedEndpoint", service="sagemaker", action="deleteEndpoint",
            parameters={"EndpointName": endpoint_name},
            iam_resources=[self._endpoint_arn()], result_path=_DISCARD,
        ))
        start_polls = sfn.Pass(self, "StartPolling", result=sfn.Result.from_object({"count": 0}), result_path="$.polls")
        wait_busy = sfn.Wait(self, "WaitForBusyEndpoint", time=sfn.WaitTime.duration(Duration.seconds(poll_interval_s)))
        # Busy (Creating, Updating, OutOfService, ...) or failed and being deleted: wait, at most
        # max_polls times, then give up (releasing the lock) instead of holding it forever.
        busy_given_up = sfn.Pass(
            self, "EndpointStayedBusy",
            parameters={"reason": sfn.JsonPath.format(
                f"endpoint {endpoint_name} stayed {{}} for {poll_interval_s * max_polls // 60} minutes "
                "(endpointMaxWaitMinutes) without becoming ready for a new model; nothing was changed",
                sfn.JsonPath.string_at("$.endpoint.status"))},
            result_path="$.failure",
        ).next(failure_chain)
        count_busy = sfn.Pass(self, "CountBusyWait", parameters={
            "lock.$": "$.waits.lock", "busy.$": "States.MathAdd($.waits.busy, 1)"}, result_path="$.waits")
        count_busy.next(sfn.Choice(self, "IsBusyWaitOver")
                        .when(sfn.Condition.number_greater_than_equals("$.waits.busy", max_polls), busy_given_up)
                        .otherwise(wait_busy))
        no_endpoint = sfn.Choice(self, "IsEndpointMissing").when(
            sfn.Condition.string_matches("$.endpointError.Cause", "*Could not find endpoint*"), create_endpoint
        ).otherwise(caught_error_for(self, "$.endpointError", failure_chain))
        describe.add_catch(no_endpoint, errors=["States.TaskFailed"], result_path="$.endpointError")
        go_live = self._go_live_chain()
        describe.next(
            sfn.Choice(self, "WhatIsTheEndpointDoing")
            .when(sfn.Condition.and_(sfn.Condition.string_equals("$.endpoint.status", "InService"),
                                     sfn.Condition.string_equals_json_path("$.endpoint.config", "$.modelId")),
                  go_live)
            .when(sfn.Condition.string_equals("$.endpoint.status", "InService"), remove_scaling)
            .when(sfn.Condition.string_equals("$.endpoint.status", "Failed"), delete_failed)
            .otherwise(count_busy)
        )
        wait_busy.next(describe)
        delete_failed.next(count_busy)
        create_endpoint.next(start_polls)
        update_endpoint.next(start_polls)

        # ---- waiting until the endpoint runs the new config ----
        # A task token parked for SageMaker's "Endpoint State Change" event wakes the wait as soon
        # as the endpoint settles; the token times out after `poll_interval_s`, so DescribeEndpoint
        # is also checked at that bounded interval (a lost event costs one interval).
        check = self._describe_endpoint("CheckEndpoint", "$.endpoint")
        catch(check)
        wait = tasks.LambdaInvoke(
            self, "WaitForEndpoint", lambda_function=park_function,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            payload=sfn.TaskInput.from_object({"taskToken": sfn.JsonPath.task_token, "endpointName": endpoint_name}),
            task_timeout=sfn.Timeout.duration(Duration.seconds(poll_interval_s)),
            result_path=_DISCARD,
        )
        wait.add_catch(check, errors=["States.Timeout"], result_path=_DISCARD)
        # If parking itself fails, fall back to plain polling rather than failing the deployment.
        wait.add_catch(
            sfn.Wait(self, "PollEndpointInstead", time=sfn.WaitTime.duration(Duration.seconds(poll_interval_s)))
            .next(check),
            errors=["States.ALL"], result_path=_DISCARD,
        )
        count = sfn.Pass(self, "CountPoll", parameters={"count.$": "States.MathAdd($.polls.count, 1)"},
                         result_path="$.polls")
        with_reason = sfn.Pass(
            self, "AddSageMakerReason",
            parameters={"reason": sfn.JsonPath.format("{}: {}", sfn.JsonPath.string_at("$.failure.summary"),
                                                      sfn.JsonPath.string_at("$.endpoint.detail.FailureReason"))},
            result_path="$.failure",
        ).next(failure_chain)
        without_reason = sfn.Pass(
            self, "NoSageMakerReason", parameters={"reason.$": "$.failure.summary"}, result_path="$.failure",
        ).next(failure_chain)
        has_reason = sfn.Choice(self, "HasSageMakerReason").when(
            sfn.Condition.is_present("$.endpoint.detail.FailureReason"), with_reason
        ).otherwise(without_reason)
        rolled_back = sfn.Pass(
            self, "EndpointKeptOldModel",
            parameters={"summary": sfn.JsonPath.format(
                "the endpoint update did not take effect; the endpoint still serves {}",
                sfn.JsonPath.string_at("$.endpoint.config"))},
            result_path="$.failure",
        ).next(has_reason)
        endpoint_failed = sfn.Pass(
            self, "EndpointFailedReason",
            parameters={"summary": f"endpoint {endpoint_name} failed"},
            result_path="$.failure",
        ).next(has_reason)
        timed_out = fail_with(
            "EndpointTooSlow",
            f"the endpoint was not InService after {poll_interval_s * max_polls} seconds",
        )
        start_polls.next(wait).next(check).next(
            sfn.Choice(self, "IsNewModelServing")
            .when(sfn.Condition.and_(sfn.Condition.string_equals("$.endpoint.status", "InService"),
                                     sfn.Condition.string_equals_json_path("$.endpoint.config", "$.modelId")), go_live)
            .when(sfn.Condition.string_equals("$.endpoint.status", "InService"), rolled_back)
            .when(sfn.Condition.string_equals("$.endpoint.status", "Failed"), endpoint_failed)
            .when(sfn.Condition.number_greater_than_equals("$.polls.count", max_polls), timed_out)
            .otherwise(count)
        )
        count.next(wait)

        # ---- the whole chain ----
        has_model = sfn.Choice(self, "IsModelTrained")
        already_created = sfn.Choice(self, "HasSageMakerModel")
        self.definition = start
        read_live_first = tasks.DynamoGetItem(
            self, "ReadLiveModel", table=registry_table, key={"modelId": S(LIVE_POINTER_ID)},
            consistent_read=True, result_path="$.live",
        )
        catch(read_live_first)
        trained = sfn.Condition.is_present("$.model.Item.artifactUri.S")
        acquire.next(read_model).next(read_live_first).next(
            # The live model keeps its status while its endpoint is re-created.
            has_model.when(sfn.Condition.and_(trained, _is_live_model()), already_created)
            .when(trained, mark_deploying)
            .otherwise(self._unknown_model_chain())
        )
        mark_deploying.next(already_created)
        already_created.when(sfn.Condition.is_present("$.model.Item.endpointConfigName.S"), describe) \
            .otherwise(create_model)
        create_model.next(create_config).next(record_names).next(describe)

    def grant_create_model(self, role: iam.IRole) -> None:
        """What the state machine's role needs for the CreateModel task (the hosting role passed to SageMaker)
        and for tagging what it creates."""
        stack = Stack.of(self)
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["sagemaker:CreateModel"],
            resources=[stack.format_arn(service="sagemaker", resource="model", resource_name="*")]))
        # Tags on create (the stack tag on models and endpoint configs) need sagemaker:AddTags too,
        # and only with this stack's tag.
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["sagemaker:AddTags"],
            resources=[stack.format_arn(service="sagemaker", resource=kind, resource_name="*")
                       for kind in ("model", "endpoint-config")],
            conditions={"StringEquals": {f"aws:RequestTag/{STACK_TAG_KEY}": stack.stack_name}}))
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["iam:PassRole"], resources=[self._hosting_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}))

    # ---- helpers ----

    def _scaling_task(self, state_id: str, action: str) -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            self, state_id, lambda_function=self._scaling_function,
            payload=sfn.TaskInput.from_object({"action": action, "endpointName": self._endpoint_name}),
            result_path=_DISCARD,
        )

    def _endpoint_arn(self) -> str:
        return f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:endpoint/{self._endpoint_name.lower()}"

    def _stack_tags(self) -> list[dict[str, str]]:
        return [{"Key": STACK_TAG_KEY, "Value": Stack.of(self).stack_name}]

    def restrict_to_own_resources(self, role: iam.IRole) -> None:
        """CDK's CreateModel / CreateEndpointConfig / CreateEndpoint tasks grant on every model and
        endpoint config (their names are per model, chosen at run time): these denials hold the
        state machine to the ones tagged with this stack's name."""
        stack_name = Stack.of(self).stack_name
        role.add_to_principal_policy(iam.PolicyStatement(
            effect=iam.Effect.DENY,
            actions=["sagemaker:CreateModel", "sagemaker:CreateEndpointConfig"], resources=["*"],
            conditions={"StringNotEquals": {f"aws:RequestTag/{STACK_TAG_KEY}": stack_name}},
        ))
        role.add_to_principal_policy(iam.PolicyStatement(
            effect=iam.Effect.DENY,
            actions=["sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint"],
            resources=[Stack.of(self).format_arn(service="sagemaker", resource="endpoint-config", resource_name="*")],
            conditions={"StringNotEquals": {f"aws:ResourceTag/{STACK_TAG_KEY}": stack_name}},
        ))

    def _describe_endpoint(self, state_id: str, result_path: str) -> tasks.CallAwsService:
        return tasks.CallAwsService(
            self, state_id, service="sagemaker", action="describeEndpoint",
            parameters={"EndpointName": self._endpoint_name},
            iam_resources=[self._endpoint_arn()],
            # `detail` keeps the optional fields (FailureReason) for the failure messages: selecting
            # a missing field would stop the execution with an uncatchable States.Runtime error.
            result_selector={"status.$": "$.EndpointStatus", "config.$": "$.EndpointConfigName", "detail.$": "$"},
            result_path=result_path,
        )

    def _acquire_lock(self) -> tasks.DynamoUpdateItem:
        return tasks.DynamoUpdateItem(
            self, "AcquireLock", table=self._state, key={"pk": S(DEPLOY_LOCK_ID)},
            update_expression="SET #owner = :me, modelId = :model, since = :now",
            condition_expression="attribute_not_exists(#owner) OR #owner = :me",
            expression_attribute_names={"#owner": "owner"},
            expression_attribute_values={":me": _str("$$.Execution.Id"), ":model": _str("$.modelId"),
                                         ":now": _str(_NOW)},
            result_path=_DISCARD,
        )

    def _unknown_model_chain(self) -> sfn.IChainable:
        """No registry write for an id that is not in the registry: report it and stop."""
        return (
            self._publish("NotifyUnknownModel", "DreamBooth: deployment refused",
                          sfn.JsonPath.format("No trained model {} in the registry: nothing was deployed; the live "
                                              "model (if any) is unchanged.", sfn.JsonPath.string_at("$.modelId")))
            .next(self._release_lock("ReleaseLockUnknownModel", then=sfn.Fail(
                self, "UnknownModel", error="UnknownModel", cause="no trained model with this modelId in the registry")))
        )

    def _release_lock(self, state_id: str, then: sfn.State) -> tasks.DynamoUpdateItem:
        """Release the lock, then go on to `then` (also when the lock is no longer held)."""
        release = tasks.DynamoUpdateItem(
            self, state_id, table=self._state, key={"pk": S(DEPLOY_LOCK_ID)},
            update_expression="REMOVE #owner",
            condition_expression="#owner = :me",
            expression_attribute_names={"#owner": "owner"},
            expression_attribute_values={":me": _str("$$.Execution.Id")},
            result_path=_DISCARD,
        )
        # Not holding the lock any more (taken over after a stop) changes nothing for this deployment.
        release.add_catch(sfn.Pass(self, f"{state_id}NotHeld").next(then),
                          errors=["DynamoDB.ConditionalCheckFailedException"], result_path=_DISCARD)
        release.next(then)
        return release

    def _registry_update(self, state_id: str, expression: str, values: dict[str, Any],
                         model_path: str = "$.modelId") -> tasks.DynamoUpdateItem:
        names = {"#status": "status"} if "#status" in expression else None
        return tasks.DynamoUpdateItem(
            self, state_id, table=self._registry, key={"modelId": _str(model_path)},
            update_expression=expression,
            expression_attribute_names=names,
            expression_attribute_values={**values, ":now": _str(_NOW)},
            result_path=_DISCARD,
        )

    def _publish(self, state_id: str, subject: str, message: str) -> tasks.SnsPublish:
        return tasks.SnsPublish(self, state_id, topic=self._topic, subject=subject,
                                message=sfn.TaskInput.from_text(message), result_path=_DISCARD)

    def _go_live_chain(self) -> sfn.IChainable:
        read_live = tasks.DynamoGetItem(
            self, "ReadLivePointer", table=self._registry, key={"modelId": S(LIVE_POINTER_ID)},
            consistent_read=True, result_path="$.live",
        )
        retire = self._registry_update(
            "RetirePreviousModel", "SET #status = :retired, updatedAt = :now",
            {":retired": S(STATUS_RETIRED)}, model_path="$.live.Item.liveModelId.S",
        )
        mark_live = self._registry_update(
            "MarkLive", "SET #status = :live, endpointName = :endpoint, updatedAt = :now REMOVE failureReason",
            {":live": S(STATUS_LIVE), ":endpoint": S(self._endpoint_name)},
        )
        point = tasks.DynamoPutItem(
            self, "PointLiveModel", table=self._registry,
            item={"modelId": S(LIVE_POINTER_ID), "liveModelId": _str("$.modelId"),
                  "endpointName": S(self._endpoint_name), "endpointConfigName": _str("$.modelId"),
                  "updatedAt": _str(_NOW)},
            result_path=_DISCARD,
        )
        live_text = ("Model {} (dataset {}) is live on endpoint {}. Put the phrase \"{}\" in your prompts to get "
                     "your subject, e.g. \"{} on a beach at sunset\".")
        live_values = (sfn.JsonPath.string_at("$.modelId"), sfn.JsonPath.string_at("$.model.Item.dataset.S"),
                       self._endpoint_name, sfn.JsonPath.string_at("$.model.Item.instancePrompt.S"),
                       sfn.JsonPath.string_at("$.model.Item.instancePrompt.S"))
        # The files the validation skipped (with "did you mean" hints), as the training recorded them.
        notify = self._publish(
            "NotifyLive", "DreamBooth: new model is live",
            sfn.JsonPath.format(live_text + " Skipped files: {}.", *live_values,
                                sfn.JsonPath.string_at("$.model.Item.skippedFiles.S")),
        )
        notify_unrecorded = self._publish(
            "NotifyLiveSkippedUnknown", "DreamBooth: new model is live", sfn.JsonPath.format(live_text, *live_values))
        done = sfn.Succeed(self, "ModelIsLive")
        release = self._release_lock("ReleaseLock", then=done)
        apply_scaling = self._scaling_task("ApplyAutoscaling", "register")
        # The new model serves either way: a scaling failure is reported, not a failed deployment.
        apply_scaling.add_catch(
            self._publish("NotifyAutoscalingFailed", "DreamBooth: autoscaling not applied",
                          sfn.JsonPath.format("Model {} serves on endpoint {}, but its autoscaling could not be "
                                              "registered: {}", sfn.JsonPath.string_at("$.modelId"),
                                              self._endpoint_name, sfn.JsonPath.string_at("$.error.Cause")))
            .next(read_live),
            errors=["States.ALL"], result_path="$.error",
        )
        apply_scaling.next(read_live)
        for state in (read_live, retire, mark_live, point, notify, notify_unrecorded):
            state.add_catch(
                sfn.Pass(self, f"{state.node.id}Error",
                         parameters={"reason": sfn.JsonPath.format(
                             "the endpoint serves the new model, but recording it failed: {}",
                             sfn.JsonPath.string_at("$.error.Cause"))},
                         result_path="$.failure").next(self._failure_chain),
                errors=["States.ALL"], result_path="$.error",
            )
        had_other = sfn.Choice(self, "WasAnotherModelLive").when(
            sfn.Condition.and_(
                sfn.Condition.is_present("$.live.Item.liveModelId.S"),
                sfn.Condition.not_(sfn.Condition.string_equals_json_path("$.live.Item.liveModelId.S", "$.modelId")),
            ),
            retire,
        ).otherwise(mark_live)
        retire.next(mark_live)
        read_live.next(had_other)
        mark_live.next(point).next(
            sfn.Choice(self, "WereSkippedFilesRecorded")
            .when(sfn.Condition.is_present("$.model.Item.skippedFiles.S"), notify)
            .otherwise(notify_unrecorded))
        notify.next(release)
        notify_unrecorded.next(release)
        return apply_scaling


@dataclass(frozen=True)
class AsyncOutput:
    """Where an asynchronous endpoint config sends its answers, failures and notices."""

    output_uri: str
    failure_uri: str
    success_topic: sns.ITopic
    error_topic: sns.ITopic


def _is_live_model() -> sfn.Condition:
    """`__live__` (read into $.live) points at this execution's model."""
    return sfn.Condition.and_(sfn.Condition.is_present("$.live.Item.liveModelId.S"),
                              sfn.Condition.string_equals_json_path("$.live.Item.liveModelId.S", "$.modelId"))


def caught_error_for(scope: Construct, path: str, failure_chain: sfn.IChainable) -> sfn.IChainable:
    return sfn.Pass(
        scope, "EndpointLookupError",
        parameters={"reason": sfn.JsonPath.format("could not look up the endpoint: {}",
                                                  sfn.JsonPath.string_at(f"{path}.Cause"))},
        result_path="$.failure",
    ).next(failure_chain)
