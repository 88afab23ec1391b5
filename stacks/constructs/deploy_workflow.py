"""The deploy state machine: put one registered model on the endpoint without downtime.

Input `{"modelId": "<id>"}`. Steps: take the deployment lock (one deployment at a time),
create the SageMaker model and endpoint config (once per model), create the endpoint or update
it (SageMaker keeps the old model serving until the new one is InService), poll
DescribeEndpoint every `poll_interval_s` (bounded by `max_polls`), then apply autoscaling, mark
the model live, retire the previous one, point `__live__` at it, notify, release the lock. Any
failure marks the model failed with the reason, notifies, releases the lock and leaves the live
model as it was.

Wake mode, input `{"modelId": "<live id>", "wake": true}` (started by the API when the endpoint
was deleted for idleness, see lambda/pipeline/endpoint_sleep.py): the same chain re-creates the
endpoint from the kept endpoint config, only if `__live__` still says asleep for that model
(otherwise it ends at once: a deployment already brought the endpoint back). The model's own
status is not touched; a failure is recorded on `__live__` (`endpointState = wake_failed`, with
the reason) instead of failing the model, so a later request can try again.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Aws, Duration, Stack, Token
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from stacks.config import STACK_TAG_KEY
from stacks.constructs.model_registry import (
    DISCARD as _DISCARD,
    NOW as _NOW,
    S,
    str_at as _str,
    DEPLOY_LOCK_ID,
    LIVE_POINTER_ID,
    STATUS_DEPLOYING,
    STATUS_FAILED,
    STATUS_LIVE,
    STATUS_RETIRED,
)

# `endpointState` of the `__live__` pointer while the endpoint sleeps (lambda/pipeline/endpoint_sleep.py).
WAKE_FAILED = "wake_failed"
IDLE_LOCK_PATTERN = "idle-check:*"

VARIANT_NAME = "AllTraffic"
# A deployment waiting for another one retries the lock at least this often.
LOCK_RETRY_S = 30
# Environment of the JumpStart inference container (see ../shared/JUMPSTART.md).
INFERENCE_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    "MMS_MAX_RESPONSE_SIZE": "20000000",
}



class DeployWorkflow(Construct):
    """Builds the deploy chain; `definition` is the first state (see module docstring).

    Props:
      registry_table / state_table: see ModelRegistry.
      topic: where outcomes are published.
      endpoint_name: the one endpoint (created at run time).
      hosting_role: role the SageMaker model runs with.
      inference_image: container image URI (from the JumpStart lock).
      instance_type: endpoint instance type.
      poll_interval_s / max_polls: DescribeEndpoint cadence when no state-change event comes, and
        the bound on the number of checks.
      park_function: stores the wait's task token for the endpoint state-change handler.
      lock_owner_arn_pattern: ARN pattern of this state machine's executions (to tell a live
        lock holder from a dead one).
      scaling_function: registers the endpoint variant's autoscaling after InService
        ({"action": "register"}) and removes it before an UpdateEndpoint ({"action": "deregister"}).
      initial_instance_count: instances of a new endpoint config (the autoscaling minimum). Default 1.
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
        instance_type: str,
        poll_interval_s: int,
        max_polls: int,
        lock_owner_arn_pattern: str,
        park_function: lambda_.IFunction,
        scaling_function: lambda_.IFunction,
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
        wake_failure_chain = (
            tasks.DynamoUpdateItem(
                self, "MarkWakeFailed", table=registry_table, key={"modelId": S(LIVE_POINTER_ID)},
                update_expression="SET endpointState = :failed, wakeFailureReason = :reason",
                expression_attribute_values={":failed": S(WAKE_FAILED), ":reason": _str("$.failure.reason")},
                result_path=_DISCARD,
            )
            .next(self._publish("NotifyWakeFailure", "DreamBooth: endpoint could not be woken up",
                                sfn.JsonPath.format("Endpoint {} could not be re-created for model {}: {}. It stays "
                                                    "asleep; the next generation request tries again.",
                                                    endpoint_name, sfn.JsonPath.string_at("$.modelId"),
                                                    sfn.JsonPath.string_at("$.failure.reason"))))
            .next(self._release_lock("ReleaseLockAfterWakeFailure", then=sfn.Fail(
                self, "WakeFailed", error="WakeFailed", cause="See wakeFailureReason on the __live__ registry item")))
        )
        failure_chain = sfn.Choice(self, "IsWakeFailure").when(
            sfn.Condition.is_present("$.wake"), wake_failure_chain).otherwise(failure_chain)
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
        acquire = self._acquire_lock()
        read_lock = tasks.DynamoGetItem(
            self, "ReadLock", table=state_table, key={"pk": S(DEPLOY_LOCK_ID)}, consistent_read=True,
            result_selector={"owner.$": "$.Item.owner.S", "item.$": "$.Item"}, result_path="$.lock",
        )
        describe_owner = tasks.CallAwsService(
            self, "DescribeLockOwner", service="sfn", action="describeExecution",
            parameters={"ExecutionArn": sfn.JsonPath.string_at("$.lock.owner")},
            iam_resources=[lock_owner_arn_pattern], iam_action="states:DescribeExecution",
            result_selector={"status.$": "$.Status"}, result_path="$.lockOwner",
        )
        take_over = tasks.DynamoUpdateItem(
            self, "TakeOverLock", table=state_table, key={"pk": S(DEPLOY_LOCK_ID)},
            update_expression="SET #owner = :me, modelId = :model, since = :now",
            condition_expression="#owner = :dead",
            expression_attribute_names={"#owner": "owner"},
            expression_attribute_values={":me": _str("$$.Execution.Id"), ":model": _str("$.modelId"),
                                         ":now": _str(_NOW), ":dead": _str("$.lock.owner")},
            result_path=_DISCARD,
        )
        wait_for_lock = sfn.Wait(self, "WaitForOtherDeployment",
                                 time=sfn.WaitTime.duration(Duration.seconds(min(poll_interval_s, LOCK_RETRY_S))))
        take_over.add_catch(acquire, errors=["DynamoDB.ConditionalCheckFailedException"], result_path=_DISCARD)
        describe_owner.add_catch(take_over, errors=["States.TaskFailed"], result_path=_DISCARD)
        read_lock.add_catch(acquire, errors=["States.ALL"], result_path=_DISCARD)  # lock released meanwhile
        acquire.add_catch(read_lock, errors=["DynamoDB.ConditionalCheckFailedException"], result_path=_DISCARD)
        # The idle check (lambda/pipeline/endpoint_sleep.py) holds the lock for seconds while it
        # deletes an idle endpoint; it is waited for until its `idleUntil`, then taken over.
        read_clock = sfn.Pass(self, "ReadClock", parameters={"now.$": "$$.State.EnteredTime"}, result_path="$.clock")
        read_lock.next(
            sfn.Choice(self, "IsIdleCheckHolding")
            .when(sfn.Condition.and_(sfn.Condition.is_present("$.lock.item.idleUntil.S"),
                                     sfn.Condition.string_matches("$.lock.owner", IDLE_LOCK_PATTERN)),
                  read_clock.next(
                      sfn.Choice(self, "IsIdleCheckLockFresh")
                      .when(sfn.Condition.timestamp_greater_than_json_path("$.lock.item.idleUntil.S", "$.clock.now"),
                            wait_for_lock)
                      .otherwise(take_over)))
            .otherwise(describe_owner)
        )
        describe_owner.next(
            sfn.Choice(self, "IsLockHolderRunning")
            .when(sfn.Condition.string_equals("$.lockOwner.status", "RUNNING"), wait_for_lock.next(acquire))
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
        create_model = catch(tasks.SageMakerCreateModel(
            self, "CreateModel",
            model_name=sfn.JsonPath.string_at("$.modelId"),
            # Immutable: CDK's task would otherwise add s3:GetObject on "*" and more to the role.
            role=iam.Role.from_role_arn(self, "HostingRoleRef", hosting_role.role_arn, mutable=False),
            primary_container=tasks.ContainerDefinition(
                image=tasks.DockerImage.from_registry(inference_image),
                mode=tasks.Mode.SINGLE_MODEL,
                model_s3_location=tasks.S3Location.from_json_expression("$.model.Item.artifactUri.S"),
                environment_variables=sfn.TaskInput.from_object(
                    {**INFERENCE_ENVIRONMENT, "SAGEMAKER_REGION": Aws.REGION}
                ),
            ),
            tags=self._stack_tag(),
            result_path=_DISCARD,
        ))
        create_config = catch(tasks.SageMakerCreateEndpointConfig(
            self, "CreateEndpointConfig",
            endpoint_config_name=sfn.JsonPath.string_at("$.modelId"),
            production_variants=[tasks.ProductionVariant(
                instance_type=ec2.InstanceType(instance_type.removeprefix("ml.")),
                model_name=sfn.JsonPath.string_at("$.modelId"),
                variant_name=VARIANT_NAME,
                initial_instance_count=initial_instance_count,
            )],
            tags=self._stack_tag(),
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
            .otherwise(wait_busy)
        )
        wait_busy.next(describe)
        delete_failed.next(wait_busy)
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
        self.definition = acquire
        trained = sfn.Condition.is_present("$.model.Item.artifactUri.S")
        acquire.next(read_model).next(
            has_model.when(sfn.Condition.and_(trained, sfn.Condition.is_present("$.wake")),
                           self._wake_check(describe))
            .when(trained, mark_deploying)
            .otherwise(self._unknown_model_chain())
        )
        mark_deploying.next(
            already_created.when(sfn.Condition.is_present("$.model.Item.endpointConfigName.S"), describe)
            .otherwise(create_model)
        )
        create_model.next(create_config).next(record_names).next(describe)

    # ---- helpers ----

    def _wake_check(self, recreate: sfn.IChainable) -> sfn.IChainable:
        """Wake mode: go on only while `__live__` still says this model's endpoint sleeps."""
        read = tasks.DynamoGetItem(
            self, "ReadSleepState", table=self._registry, key={"modelId": S(LIVE_POINTER_ID)},
            consistent_read=True, result_path="$.sleep",
        )
        read.add_catch(self._caught_error, errors=["States.ALL"], result_path="$.error")
        awake = self._release_lock("ReleaseLockAlreadyAwake", then=sfn.Succeed(
            self, "AlreadyAwake", comment="A deployment brought the endpoint back meanwhile: nothing to wake."))
        return read.next(
            sfn.Choice(self, "IsStillAsleep")
            .when(sfn.Condition.and_(
                sfn.Condition.is_present("$.sleep.Item.endpointState.S"),
                sfn.Condition.is_present("$.sleep.Item.liveModelId.S"),
                sfn.Condition.string_equals_json_path("$.sleep.Item.liveModelId.S", "$.modelId")), recreate)
            .otherwise(awake)
        )

    def _scaling_task(self, state_id: str, action: str) -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            self, state_id, lambda_function=self._scaling_function,
            payload=sfn.TaskInput.from_object({"action": action, "endpointName": self._endpoint_name}),
            result_path=_DISCARD,
        )

    def _endpoint_arn(self) -> str:
        return f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:endpoint/{self._endpoint_name.lower()}"

    def _stack_tag(self) -> sfn.TaskInput:
        """Models and endpoint configs carry the stack's name: IAM then holds this stack to its own."""
        tags = [{"Key": STACK_TAG_KEY, "Value": Stack.of(self).stack_name}]
        # SageMaker's Tags is a list and TaskInput.fromObject takes only an object: the list is
        # written as JSON text and parsed by the States.StringToJson intrinsic.
        as_json = sfn.JsonPath.string_to_json(json.dumps(tags, separators=(",", ":")))
        return sfn.TaskInput.from_json_path_at(Token.as_string(as_json))

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
        notify = self._publish(
            "NotifyLive", "DreamBooth: new model is live",
            sfn.JsonPath.format(
                "Model {} (dataset {}) is live on endpoint {}. Put the phrase \"{}\" in your prompts to get "
                "your subject, e.g. \"{} on a beach at sunset\".",
                sfn.JsonPath.string_at("$.modelId"), sfn.JsonPath.string_at("$.model.Item.dataset.S"),
                self._endpoint_name, sfn.JsonPath.string_at("$.model.Item.instancePrompt.S"),
                sfn.JsonPath.string_at("$.model.Item.instancePrompt.S"),
            ),
        )
        notify_awake = self._publish(
            "NotifyAwake", "DreamBooth: endpoint awake again",
            sfn.JsonPath.format("Endpoint {} was re-created after its idle shutdown and serves model {} again.",
                                self._endpoint_name, sfn.JsonPath.string_at("$.modelId")),
        )
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
        for state in (read_live, retire, mark_live, point, notify, notify_awake):
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
            sfn.Choice(self, "WasItAWakeUp").when(sfn.Condition.is_present("$.wake"), notify_awake)
            .otherwise(notify))
        notify.next(release)
        notify_awake.next(release)
        return apply_scaling


def caught_error_for(scope: Construct, path: str, failure_chain: sfn.IChainable) -> sfn.IChainable:
    return sfn.Pass(
        scope, "EndpointLookupError",
        parameters={"reason": sfn.JsonPath.format("could not look up the endpoint: {}",
                                                  sfn.JsonPath.string_at(f"{path}.Cause"))},
        result_path="$.failure",
    ).next(failure_chain)
