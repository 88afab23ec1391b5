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
lambda/api/endpoint.py): the model stays `live` throughout, and a failure is recorded on the
`__live__` pointer (`endpointError`) and notified, never by marking the live model failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from dreambooth_shared.contract import (
    DEPLOY_LOCK_ID,
    LIVE_POINTER_ID,
    STACK_DELETING_ATTRIBUTE,
    STATUS_DEPLOYING,
    STATUS_FAILED,
    STATUS_LIVE,
    STATUS_RETIRED,
    VARIANT_NAME,
)
from stacks.config import STACK_TAG_KEY
from stacks.registry.construct import DISCARD as _DISCARD
from stacks.registry.construct import NOW as _NOW
from stacks.registry.construct import S
from stacks.registry.construct import str_at as _str
from stacks.shared import arns
from stacks.shared.steps import ONWARD, Step

# A deployment waiting for another one checks the lock at most MAX_LOCK_CHECKS times, spaced (at
# least LOCK_RETRY_S apart, or as often as the endpoint is polled) to cover the longest time the
# holder can keep it: its busy-endpoint wait and its endpoint wait, each up to max_polls
# intervals, plus LOCK_HOLD_MARGIN_S for its other steps. Then it gives up, and says so.
LOCK_RETRY_S = 30
# Asynchronous inference: one request at a time per instance (a T4 draws one image at a time).
MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE = 1
MAX_LOCK_CHECKS = 200
LOCK_HOLD_MARGIN_S = 600
# The loops of the chain, by state name, for the history-event budget (sfn_budget.py): a known way
# round each; the longest way round the loop counts (longest_turn), e.g. the lock's take-over path.
LOCK_LOOPS = (
    (
        "AcquireLock",
        "ReadLock",
        "IsLockHeld",
        "DescribeLockOwner",
        "IsLockHolderRunning",
        "CountLockCheck",
        "IsLockWaitOver",
        "WaitForOtherDeployment",
    ),
    ("AcquireLock", "ReadLock", "IsLockHeld", "CountLockRetry", "IsLockRetryOver"),
)
BUSY_LOOPS = (
    ("DescribeEndpoint", "WhatIsTheEndpointDoing", "CountBusyWait", "IsBusyWaitOver", "WaitForBusyEndpoint"),
    (
        "DescribeEndpoint",
        "WhatIsTheEndpointDoing",
        "DeleteFailedEndpoint",
        "CountBusyWait",
        "IsBusyWaitOver",
        "WaitForBusyEndpoint",
    ),
    (
        "DescribeEndpoint",
        "WhatIsTheEndpointDoing",
        "DeleteRealTimeEndpoint",
        "CountBusyWait",
        "IsBusyWaitOver",
        "WaitForBusyEndpoint",
    ),
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
            return sfn_budget.longest_turn(graph, loops)

        unbounded = sfn_budget.unbounded_loops(graph, LOCK_LOOPS + BUSY_LOOPS + POLL_LOOPS)
        if unbounded:
            raise ValueError(f"the deploy state machine has loop(s) its history budget does not bound: {unbounded}")

        return cls(
            straight=sfn_budget.straight_events(graph),
            lock_turn=turn(LOCK_LOOPS),
            busy_turn=turn(BUSY_LOOPS),
            poll_turn=turn(POLL_LOOPS),
        )


# Added to the JumpStart hosting spec's environment (from the lock): room for several base64
# JPEGs in one answer (the public samples set it).
EXTRA_INFERENCE_ENVIRONMENT = {"MMS_MAX_RESPONSE_SIZE": "20000000"}


class DeployWorkflow(Construct):
    """Builds the deploy chain; `definition` is the first state (see module docstring).

    The chain is five named steps, linked top-down in `__init__`; every failure goes to a sixth,
    `DeployFailure`.

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
        ({"action": "register"}), and before an UpdateEndpoint removes it only if SageMaker would
        refuse the update with it ({"action": "prepare-update"}: an instance type changes); every
        way a deployment ends after that removal registers it again (`DeployFailure`).
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
        self._hosting_role = hosting_role
        parts = _Parts(registry=registry_table, state=state_table, topic=topic, endpoint_name=endpoint_name)

        failure = DeployFailure(self, "Failure", parts, scaling_function=scaling_function)
        lock = DeploymentLock(
            self,
            "Lock",
            parts,
            failure,
            retry_s=lock_retry_s(poll_interval_s, max_polls),
            lock_owner_arn_pattern=lock_owner_arn_pattern,
        )
        model = ModelToDeploy(self, "Model", parts, failure)
        sagemaker_model = CreateSageMakerModel(
            self,
            "SageMakerModel",
            parts,
            failure,
            hosting_role=hosting_role,
            inference_image=inference_image,
            inference_environment=inference_environment,
            instance_type=instance_type,
            initial_instance_count=initial_instance_count,
            async_output=async_output,
        )
        rollout = Rollout(
            self,
            "Rollout",
            parts,
            failure,
            park_function=park_function,
            scaling_function=scaling_function,
            poll_interval_s=poll_interval_s,
            max_polls=max_polls,
        )
        go_live = GoLive(self, "GoLive", parts, failure, scaling_function=scaling_function)

        self.definition = lock.start_state
        lock.then(model).then(sagemaker_model).then(rollout).then(go_live)

    def grant_create_model(self, role: iam.IRole) -> None:
        """What the state machine's role needs for the CreateModel task (the hosting role passed to SageMaker)
        and for tagging what it creates."""
        stack = Stack.of(self)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:CreateModel"],
                resources=[stack.format_arn(service="sagemaker", resource="model", resource_name="*")],
            )
        )
        # Tags on create (the stack tag on models and endpoint configs) need sagemaker:AddTags too,
        # and only with this stack's tag.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:AddTags"],
                resources=[
                    stack.format_arn(service="sagemaker", resource=kind, resource_name="*")
                    for kind in ("model", "endpoint-config")
                ],
                conditions={"StringEquals": {f"aws:RequestTag/{STACK_TAG_KEY}": stack.stack_name}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self._hosting_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )

    def restrict_to_own_resources(self, role: iam.IRole) -> None:
        """CDK's CreateModel / CreateEndpointConfig / CreateEndpoint tasks grant on every model and
        endpoint config (their names are per model, chosen at run time): these denials hold the
        state machine to the ones tagged with this stack's name."""
        stack_name = Stack.of(self).stack_name
        role.add_to_principal_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=["sagemaker:CreateModel", "sagemaker:CreateEndpointConfig"],
                resources=["*"],
                conditions={"StringNotEquals": {f"aws:RequestTag/{STACK_TAG_KEY}": stack_name}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                actions=["sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpointConfig"],
                resources=[arns.endpoint_config_arns(self)],
                conditions={"StringNotEquals": {f"aws:ResourceTag/{STACK_TAG_KEY}": stack_name}},
            )
        )


@dataclass(frozen=True)
class _Parts:
    """What every step of the deploy chain uses, and the states it builds from them."""

    registry: dynamodb.ITable
    state: dynamodb.ITable
    topic: sns.ITopic
    endpoint_name: str

    def registry_update(
        self, scope: Construct, state_id: str, expression: str, values: dict[str, Any], model_path: str = "$.modelId"
    ) -> tasks.DynamoUpdateItem:
        names = {"#status": "status"} if "#status" in expression else None
        return tasks.DynamoUpdateItem(
            scope,
            state_id,
            table=self.registry,
            key={"modelId": _str(model_path)},
            update_expression=expression,
            expression_attribute_names=names,
            expression_attribute_values={**values, ":now": _str(_NOW)},
            result_path=_DISCARD,
        )

    def publish(self, scope: Construct, state_id: str, subject: str, message: str) -> tasks.SnsPublish:
        return tasks.SnsPublish(
            scope,
            state_id,
            topic=self.topic,
            subject=subject,
            message=sfn.TaskInput.from_text(message),
            result_path=_DISCARD,
        )

    def release_lock(self, scope: Construct, state_id: str, then: sfn.State) -> tasks.DynamoUpdateItem:
        """Release the lock, then go on to `then` (also when the lock is no longer held)."""
        release = tasks.DynamoUpdateItem(
            scope,
            state_id,
            table=self.state,
            key={"pk": S(DEPLOY_LOCK_ID)},
            update_expression="REMOVE #owner",
            condition_expression="#owner = :me",
            expression_attribute_names={"#owner": "owner"},
            expression_attribute_values={":me": _str("$$.Execution.Id")},
            result_path=_DISCARD,
        )
        # Not holding the lock any more (taken over after a stop) changes nothing for this deployment.
        release.add_catch(
            sfn.Pass(scope, f"{state_id}NotHeld").next(then),
            errors=["DynamoDB.ConditionalCheckFailedException"],
            result_path=_DISCARD,
        )
        release.next(then)
        return release

    def describe_endpoint(self, scope: Construct, state_id: str) -> tasks.CallAwsService:
        return tasks.CallAwsService(
            scope,
            state_id,
            service="sagemaker",
            action="describeEndpoint",
            parameters={"EndpointName": self.endpoint_name},
            iam_resources=[arns.endpoint_arn(scope, self.endpoint_name)],
            # `detail` keeps the optional fields (FailureReason) for the failure messages: selecting
            # a missing field would stop the execution with an uncatchable States.Runtime error.
            result_selector={"status.$": "$.EndpointStatus", "config.$": "$.EndpointConfigName", "detail.$": "$"},
            result_path="$.endpoint",
        )

    def scaling_task(
        self, scope: Construct, state_id: str, function: lambda_.IFunction, action: str, **fields: Any
    ) -> tasks.LambdaInvoke:
        return tasks.LambdaInvoke(
            scope,
            state_id,
            lambda_function=function,
            payload=sfn.TaskInput.from_object({"action": action, "endpointName": self.endpoint_name, **fields}),
            result_path=_DISCARD,
        )


class DeployFailure(Step):
    """Where every failure ends: the model is marked failed and it is notified (or, for the live
    model whose endpoint is being re-created, `__live__` records `endpointError`: the model stays
    live), the lock is released and the run fails. The live model is never touched.

    A run that removed the endpoint's autoscaling for its update (`$.scaling.deregistered`) first
    registers it again for the config the endpoint runs now (the old one after a refusal or a
    rollback; once InService, if it is still updating: then the periodic check does it).

    Entries: the step itself (needs `$.failure.reason`), `caught_error` (a Catch's `$.error`),
    `fail_with` (a fixed reason)."""

    def __init__(
        self, scope: Construct, construct_id: str, parts: _Parts, *, scaling_function: lambda_.IFunction
    ) -> None:
        super().__init__(scope, construct_id)
        self._failed = parts.registry_update(
            self,
            "MarkFailed",
            "SET #status = :failed, failureReason = :reason, updatedAt = :now",
            {":failed": S(STATUS_FAILED), ":reason": _str("$.failure.reason")},
        )
        model_failed = self._failed.next(
            parts.publish(
                self,
                "NotifyFailure",
                "DreamBooth: deployment failed",
                sfn.JsonPath.format(
                    "Model {} could not be put live: {}. The previously live model (if any) is still serving.",
                    sfn.JsonPath.string_at("$.modelId"),
                    sfn.JsonPath.string_at("$.failure.reason"),
                ),
            )
        ).next(
            parts.release_lock(
                self,
                "ReleaseLockAfterFailure",
                then=sfn.Fail(
                    self, "DeploymentFailed", error="DeploymentFailed", cause="See the model's failureReason"
                ),
            )
        )
        # The live model itself (its endpoint being re-created): it stays live, the pointer says what failed.
        live_failed = (
            tasks.DynamoUpdateItem(
                self,
                "RecordEndpointError",
                table=parts.registry,
                key={"modelId": S(LIVE_POINTER_ID)},
                update_expression="SET endpointError = :reason, endpointErrorAt = :now",
                expression_attribute_values={":reason": _str("$.failure.reason"), ":now": _str(_NOW)},
                result_path=_DISCARD,
            )
            .next(
                parts.publish(
                    self,
                    "NotifyEndpointNotRestored",
                    "DreamBooth: endpoint could not be re-created",
                    sfn.JsonPath.format(
                        "Endpoint {} could not be re-created for the live model {}: {}. "
                        "The model stays live; generation requests stay queued and "
                        "the next request or the periodic check tries again.",
                        parts.endpoint_name,
                        sfn.JsonPath.string_at("$.modelId"),
                        sfn.JsonPath.string_at("$.failure.reason"),
                    ),
                )
            )
            .next(
                parts.release_lock(
                    self,
                    "ReleaseLockAfterEndpointError",
                    then=sfn.Fail(
                        self,
                        "EndpointNotRestored",
                        error="EndpointNotRestored",
                        cause="See endpointError on the __live__ registry item",
                    ),
                )
            )
        )
        which_model = self.choice("IsTheLiveModel", [(is_live_model(), live_failed)], otherwise=model_failed)
        # A registration that fails here is left to the periodic check (the error stays in the history).
        restore_scaling = parts.scaling_task(self, "RestoreAutoscaling", scaling_function, "register")
        restore_scaling.add_catch(which_model, errors=["States.ALL"], result_path="$.scalingError")
        restore_scaling.next(which_model)
        self.begin(
            self.choice(
                "DidThisRunRemoveAutoscaling",
                [
                    (
                        sfn.Condition.and_(
                            sfn.Condition.is_present("$.scaling.deregistered"),
                            sfn.Condition.boolean_equals("$.scaling.deregistered", True),
                        ),
                        restore_scaling,
                    )
                ],
                otherwise=which_model,
            )
        )
        self.caught_error = sfn.Pass(
            self,
            "DescribeError",
            parameters={
                "reason": sfn.JsonPath.format(
                    "{}: {}", sfn.JsonPath.string_at("$.error.Error"), sfn.JsonPath.string_at("$.error.Cause")
                )
            },
            result_path="$.failure",
        ).next(self)

    def fail_with(self, scope: Construct, state_id: str, reason: str) -> sfn.IChainable:
        return sfn.Pass(scope, state_id, parameters={"reason": reason}, result_path="$.failure").next(self)

    def catch(self, state: Any) -> Any:
        """Any error of `state` fails the deployment with the error's name and cause."""
        state.add_catch(self.caught_error, errors=["States.ALL"], result_path="$.error")
        return state


class DeploymentLock(Step):
    """One deployment at a time: take the lock, or wait (counted, bounded) while its holder runs,
    and take it over from a holder that stopped."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        parts: _Parts,
        failure: DeployFailure,
        *,
        retry_s: int,
        lock_owner_arn_pattern: str,
    ) -> None:
        super().__init__(scope, construct_id)
        # Every wait below is counted in `$.waits` and bounded: an execution may write at most
        # 25,000 history events, and a deployment must give up (and say so) long before that.
        start = sfn.Pass(
            self, "StartDeployment", result=sfn.Result.from_object({"lock": 0, "busy": 0}), result_path="$.waits"
        )

        def take_lock(state_id: str, condition: str, **values: tasks.DynamoAttributeValue) -> tasks.DynamoUpdateItem:
            """This execution becomes the lock's owner, if `condition` holds."""
            return tasks.DynamoUpdateItem(
                self,
                state_id,
                table=parts.state,
                key={"pk": S(DEPLOY_LOCK_ID)},
                update_expression="SET #owner = :me, modelId = :model, since = :now",
                condition_expression=condition,
                expression_attribute_names={"#owner": "owner"},
                expression_attribute_values={
                    ":me": _str("$$.Execution.Id"),
                    ":model": _str("$.modelId"),
                    ":now": _str(_NOW),
                    **{f":{k}": v for k, v in values.items()},
                },
                result_path=_DISCARD,
            )

        acquire = take_lock("AcquireLock", "attribute_not_exists(#owner) OR #owner = :me")
        start.next(acquire)
        # No ResultSelector on the lock item: its holder may have released it between the failed
        # acquire and this read, and a missing `owner` would then stop the execution with
        # States.Runtime, which no Catch can intercept.
        read_lock = tasks.DynamoGetItem(
            self,
            "ReadLock",
            table=parts.state,
            key={"pk": S(DEPLOY_LOCK_ID)},
            consistent_read=True,
            result_path="$.lock",
        )
        lock_given_up = failure.fail_with(
            self,
            "GaveUpWaitingForLock",
            f"another deployment kept the deployment lock for more than {retry_s * MAX_LOCK_CHECKS // 60} minutes "
            "(longer than one deployment can take); nothing was changed and the live model is untouched. Put the "
            "model live again once the other deployment has ended",
        )

        def counted(count_id: str, choice_id: str, then: sfn.IChainable) -> sfn.Pass:
            """Count one more lock check; past MAX_LOCK_CHECKS give up, else go on to `then`."""
            count = sfn.Pass(
                self,
                count_id,
                parameters={"lock.$": "States.MathAdd($.waits.lock, 1)", "busy.$": "$.waits.busy"},
                result_path="$.waits",
            )
            count.next(
                self.choice(
                    choice_id,
                    [(sfn.Condition.number_greater_than_equals("$.waits.lock", MAX_LOCK_CHECKS), lock_given_up)],
                    otherwise=then,
                )
            )
            return count

        retry_lock = counted("CountLockRetry", "IsLockRetryOver", acquire)
        describe_owner = tasks.CallAwsService(
            self,
            "DescribeLockOwner",
            service="sfn",
            action="describeExecution",
            parameters={"ExecutionArn": sfn.JsonPath.string_at("$.lock.Item.owner.S")},
            iam_resources=[lock_owner_arn_pattern],
            iam_action="states:DescribeExecution",
            result_selector={"status.$": "$.Status"},
            result_path="$.lockOwner",
        )
        take_over = take_lock("TakeOverLock", "#owner = :dead", dead=_str("$.lock.Item.owner.S"))
        wait_for_lock = sfn.Wait(self, "WaitForOtherDeployment", time=sfn.WaitTime.duration(Duration.seconds(retry_s)))
        check_lock_later = counted("CountLockCheck", "IsLockWaitOver", wait_for_lock)
        take_over.add_catch(retry_lock, errors=["DynamoDB.ConditionalCheckFailedException"], result_path=_DISCARD)
        describe_owner.add_catch(take_over, errors=["States.TaskFailed"], result_path=_DISCARD)
        read_lock.add_catch(retry_lock, errors=["States.ALL"], result_path=_DISCARD)
        acquire.add_catch(read_lock, errors=["DynamoDB.ConditionalCheckFailedException"], result_path=_DISCARD)
        # Released between the failed acquire and the read: try to acquire again.
        read_lock.next(
            self.choice(
                "IsLockHeld", [(sfn.Condition.is_present("$.lock.Item.owner.S"), describe_owner)], otherwise=retry_lock
            )
        )
        wait_for_lock.next(acquire)
        describe_owner.next(
            self.choice(
                "IsLockHolderRunning",
                [(sfn.Condition.string_equals("$.lockOwner.status", "RUNNING"), check_lock_later)],
                otherwise=take_over,
            )
        )
        self.begin(start)
        self.end(acquire, take_over)


class ModelToDeploy(Step):
    """Read the model and the live pointer: a trained model is marked deploying (the live model,
    whose endpoint is re-created, keeps its status); an unknown one is refused, and so is every
    deployment once the stack is being deleted (the cleanup marks the live pointer, then stops the
    runs it finds: a run that read the pointer before is among them)."""

    def __init__(self, scope: Construct, construct_id: str, parts: _Parts, failure: DeployFailure) -> None:
        super().__init__(scope, construct_id)
        read_model = failure.catch(
            tasks.DynamoGetItem(
                self,
                "ReadModel",
                table=parts.registry,
                key={"modelId": _str("$.modelId")},
                consistent_read=True,
                result_path="$.model",
            )
        )
        mark_deploying = failure.catch(
            parts.registry_update(
                self,
                "MarkDeploying",
                "SET #status = :deploying, updatedAt = :now REMOVE failureReason",
                {":deploying": S(STATUS_DEPLOYING)},
            )
        )
        read_live = failure.catch(
            tasks.DynamoGetItem(
                self,
                "ReadLiveModel",
                table=parts.registry,
                key={"modelId": S(LIVE_POINTER_ID)},
                consistent_read=True,
                result_path="$.live",
            )
        )
        # No registry write for an id that is not in the registry: report it and stop.
        unknown = parts.publish(
            self,
            "NotifyUnknownModel",
            "DreamBooth: deployment refused",
            sfn.JsonPath.format(
                "No trained model {} in the registry: nothing was deployed; the live model (if any) is unchanged.",
                sfn.JsonPath.string_at("$.modelId"),
            ),
        ).next(
            parts.release_lock(
                self,
                "ReleaseLockUnknownModel",
                then=sfn.Fail(
                    self,
                    "UnknownModel",
                    error="UnknownModel",
                    cause="no trained model with this modelId in the registry",
                ),
            )
        )
        stack_deleting = parts.release_lock(
            self,
            "ReleaseLockStackDeleting",
            then=sfn.Fail(
                self,
                "StackBeingDeleted",
                error="StackBeingDeleted",
                cause="the stack is being deleted: nothing is deployed and the endpoint is not created again",
            ),
        )
        trained = sfn.Condition.is_present("$.model.Item.artifactUri.S")
        self.begin(
            read_model.next(read_live).next(
                self.choice(
                    "IsModelTrained",
                    [
                        (sfn.Condition.is_present(f"$.live.Item.{STACK_DELETING_ATTRIBUTE}.S"), stack_deleting),
                        # The live model keeps its status while its endpoint is re-created.
                        (sfn.Condition.and_(trained, is_live_model()), ONWARD),
                        (trained, mark_deploying),
                    ],
                    otherwise=unknown,
                )
            )
        )
        self.end(mark_deploying)


class CreateSageMakerModel(Step):
    """The SageMaker model and endpoint config, named after the model id, once per model (a recorded
    config without AsyncInferenceConfig, from an older real-time stack, is made again)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        parts: _Parts,
        failure: DeployFailure,
        *,
        hosting_role: iam.IRole,
        inference_image: str,
        inference_environment: Mapping[str, str],
        instance_type: str,
        initial_instance_count: int,
        async_output: "AsyncOutput",
    ) -> None:
        super().__init__(scope, construct_id)
        stack_tags = [{"Key": STACK_TAG_KEY, "Value": Stack.of(self).stack_name}]
        # CustomState: CDK's SageMakerCreateModel task has no ModelDataSource. The model data is
        # the uncompressed training output (with code/inference.py, see model_package.py),
        # served as an S3 prefix. The aws-sdk integration, not the optimized one: it passes the
        # parameters to CreateModel as they are, while the optimized one validates them against its
        # own schema when the machine is created, and nothing shows that schema has ModelDataSource
        # (tests/test_optimized_integration_fields.py). Errors are SageMaker.<Error>; the catch
        # takes them all. IAM in DeployWorkflow.grant_create_model.
        create_model = failure.catch(
            sfn.CustomState(
                self,
                "CreateModel",
                state_json={
                    "Type": "Task",
                    "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:sagemaker:createModel",
                    "Parameters": {
                        "ModelName.$": "$.modelId",
                        "ExecutionRoleArn": hosting_role.role_arn,
                        "PrimaryContainer": {
                            "Image": inference_image,
                            "Mode": "SingleModel",
                            "ModelDataSource": {
                                "S3DataSource": {
                                    "S3Uri.$": "$.model.Item.artifactUri.S",
                                    "S3DataType": "S3Prefix",
                                    "CompressionType": "None",
                                }
                            },
                            "Environment": {
                                **inference_environment,
                                **EXTRA_INFERENCE_ENVIRONMENT,
                                "SAGEMAKER_REGION": Aws.REGION,
                            },
                        },
                        # A literal list (CDK's task inputs take only objects); IAM holds the role to tagged models.
                        "Tags": stack_tags,
                    },
                    # CreateModel answers {ModelArn}: kept (a null ResultPath is dropped from a CustomState).
                    "ResultPath": "$.sagemakerModel",
                },
            )
        )
        create_config = failure.catch(
            tasks.CallAwsService(
                self,
                "CreateEndpointConfig",
                service="sagemaker",
                action="createEndpointConfig",
                parameters={
                    "EndpointConfigName": sfn.JsonPath.string_at("$.modelId"),
                    "ProductionVariants": [
                        {
                            "VariantName": VARIANT_NAME,
                            "ModelName": sfn.JsonPath.string_at("$.modelId"),
                            "InstanceType": instance_type,
                            "InitialInstanceCount": initial_instance_count,
                        }
                    ],
                    # Models and endpoint configs carry the stack's name: IAM then holds this stack to its own.
                    "Tags": stack_tags,
                    "AsyncInferenceConfig": {
                        "ClientConfig": {
                            "MaxConcurrentInvocationsPerInstance": MAX_CONCURRENT_INVOCATIONS_PER_INSTANCE
                        },
                        "OutputConfig": {
                            "S3OutputPath": async_output.output_uri,
                            "S3FailurePath": async_output.failure_uri,
                            "NotificationConfig": {
                                "SuccessTopic": async_output.success_topic.topic_arn,
                                "ErrorTopic": async_output.error_topic.topic_arn,
                            },
                        },
                    },
                },
                iam_resources=[arns.endpoint_config_arns(self)],
                iam_action="sagemaker:CreateEndpointConfig",
                result_path=_DISCARD,
            )
        )
        record_names = failure.catch(
            parts.registry_update(
                self,
                "RecordSageMakerNames",
                "SET sagemakerModelName = :name, endpointConfigName = :name, updatedAt = :now",
                {":name": _str("$.modelId")},
            )
        )
        create_model.next(create_config).next(record_names)
        # A recorded config is reused only if it is asynchronous: one made by an older, real-time
        # version of the stack cannot serve this endpoint (UpdateEndpoint is refused between the two
        # kinds). That one is deleted and made again under its name; its SageMaker model is kept. If
        # the endpoint still runs it, Rollout sees the endpoint has no AsyncInferenceConfig and
        # deletes and re-creates it (DeleteEndpointConfig does not stop an endpoint using the config).
        describe_config = tasks.CallAwsService(
            self,
            "DescribeRecordedConfig",
            service="sagemaker",
            action="describeEndpointConfig",
            parameters={"EndpointConfigName": sfn.JsonPath.string_at("$.modelId")},
            iam_resources=[arns.endpoint_config_arns(self)],
            result_selector={"detail.$": "$"},
            result_path="$.recordedConfig",
        )
        # Not found (deleted out of band): on as before; creating the endpoint reports it.
        self.catch_onward(describe_config, ["States.TaskFailed"], _DISCARD)
        delete_real_time = failure.catch(
            tasks.CallAwsService(
                self,
                "DeleteRealTimeConfig",
                service="sagemaker",
                action="deleteEndpointConfig",
                parameters={"EndpointConfigName": sfn.JsonPath.string_at("$.modelId")},
                iam_resources=[arns.endpoint_config_arns(self)],
                result_path=_DISCARD,
            )
        )
        delete_real_time.next(create_config)
        describe_config.next(
            self.choice(
                "IsRecordedConfigAsynchronous",
                [(sfn.Condition.is_present("$.recordedConfig.detail.AsyncInferenceConfig"), ONWARD)],
                otherwise=delete_real_time,
            )
        )
        self.begin(
            self.choice(
                "HasSageMakerModel",
                [(sfn.Condition.is_present("$.model.Item.endpointConfigName.S"), describe_config)],
                otherwise=create_model,
            )
        )
        self.end(record_names)


class Rollout(Step):
    """Put the model's endpoint config on the endpoint and wait until it serves it.

    Create the endpoint, or update it (autoscaling removed first where SageMaker requires it, recorded
    in `$.scaling`); a busy endpoint is waited for
    and a failed one deleted, at most `max_polls` times. Then wait for SageMaker's state-change
    event (a parked task token), checking DescribeEndpoint at least every `poll_interval_s`, at
    most `max_polls` times. Leaves the step once the endpoint serves this model's config."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        parts: _Parts,
        failure: DeployFailure,
        *,
        park_function: lambda_.IFunction,
        scaling_function: lambda_.IFunction,
        poll_interval_s: int,
        max_polls: int,
    ) -> None:
        super().__init__(scope, construct_id)
        endpoint_name = parts.endpoint_name
        # The endpoint's own AsyncInferenceConfig, not its config's name: a real-time endpoint of an
        # older stack may run a config whose name was since made again asynchronous (DeleteRealTimeConfig).
        asynchronous = sfn.Condition.is_present("$.endpoint.detail.AsyncInferenceConfig")
        serves_this_model = sfn.Condition.and_(
            sfn.Condition.string_equals("$.endpoint.status", "InService"),
            sfn.Condition.string_equals_json_path("$.endpoint.config", "$.modelId"),
            asynchronous,
        )
        in_service = sfn.Condition.string_equals("$.endpoint.status", "InService")
        failed = sfn.Condition.string_equals("$.endpoint.status", "Failed")

        # ---- create or update the endpoint ----
        describe = parts.describe_endpoint(self, "DescribeEndpoint")
        create_endpoint = failure.catch(
            tasks.SageMakerCreateEndpoint(
                self,
                "CreateEndpoint",
                endpoint_name=endpoint_name,
                endpoint_config_name=sfn.JsonPath.string_at("$.modelId"),
                result_path=_DISCARD,
            )
        )
        update_endpoint = failure.catch(
            tasks.SageMakerUpdateEndpoint(
                self,
                "UpdateEndpoint",
                endpoint_name=endpoint_name,
                endpoint_config_name=sfn.JsonPath.string_at("$.modelId"),
                result_path=_DISCARD,
            )
        )
        # An update that changes the instance type fails while the variant is a scalable target:
        # only then is autoscaling removed first (a new model alone keeps it), and registered again
        # on every way the run ends (GoLive, DeployFailure).
        remove_scaling = tasks.LambdaInvoke(
            self,
            "PrepareAutoscalingForUpdate",
            lambda_function=scaling_function,
            payload=sfn.TaskInput.from_object(
                {
                    "action": "prepare-update",
                    "endpointName": endpoint_name,
                    "endpointConfigName": sfn.JsonPath.string_at("$.modelId"),
                }
            ),
            result_selector={"deregistered.$": "$.Payload.deregistered"},
            result_path="$.scaling",
        )
        # It may have removed it before it failed: the failure path registers it again.
        remove_scaling.add_catch(
            sfn.Pass(
                self,
                "MayHaveRemovedAutoscaling",
                result=sfn.Result.from_object({"deregistered": True}),
                result_path="$.scaling",
            ).next(failure.caught_error),
            errors=["States.ALL"],
            result_path="$.error",
        )
        remove_scaling.next(update_endpoint)
        delete_failed = failure.catch(
            tasks.CallAwsService(
                self,
                "DeleteFailedEndpoint",
                service="sagemaker",
                action="deleteEndpoint",
                parameters={"EndpointName": endpoint_name},
                iam_resources=[arns.endpoint_arn(self, endpoint_name)],
                result_path=_DISCARD,
            )
        )
        # UpdateEndpoint cannot turn a real-time endpoint into an asynchronous one: it is deleted
        # (then created again, as a missing one is) whatever config it runs.
        delete_real_time = failure.catch(
            tasks.CallAwsService(
                self,
                "DeleteRealTimeEndpoint",
                service="sagemaker",
                action="deleteEndpoint",
                parameters={"EndpointName": endpoint_name},
                iam_resources=[arns.endpoint_arn(self, endpoint_name)],
                result_path=_DISCARD,
            )
        )
        start_polls = sfn.Pass(self, "StartPolling", result=sfn.Result.from_object({"count": 0}), result_path="$.polls")
        wait_busy = sfn.Wait(self, "WaitForBusyEndpoint", time=sfn.WaitTime.duration(Duration.seconds(poll_interval_s)))
        # Busy (Creating, Updating, OutOfService, ...) or failed and being deleted: wait, at most
        # max_polls times, then give up (releasing the lock) instead of holding it forever.
        busy_given_up = sfn.Pass(
            self,
            "EndpointStayedBusy",
            parameters={
                "reason": sfn.JsonPath.format(
                    f"endpoint {endpoint_name} stayed {{}} for {poll_interval_s * max_polls // 60} minutes "
                    "(endpointMaxWaitMinutes) without becoming ready for a new model; nothing was changed",
                    sfn.JsonPath.string_at("$.endpoint.status"),
                )
            },
            result_path="$.failure",
        ).next(failure)
        count_busy = sfn.Pass(
            self,
            "CountBusyWait",
            parameters={"lock.$": "$.waits.lock", "busy.$": "States.MathAdd($.waits.busy, 1)"},
            result_path="$.waits",
        )
        count_busy.next(
            self.choice(
                "IsBusyWaitOver",
                [(sfn.Condition.number_greater_than_equals("$.waits.busy", max_polls), busy_given_up)],
                otherwise=wait_busy,
            )
        )
        no_endpoint = self.choice(
            "IsEndpointMissing",
            [(sfn.Condition.string_matches("$.endpointError.Cause", "*Could not find endpoint*"), create_endpoint)],
            otherwise=caught_error_for(self, "$.endpointError", failure),
        )
        describe.add_catch(no_endpoint, errors=["States.TaskFailed"], result_path="$.endpointError")
        describe.next(
            self.choice(
                "WhatIsTheEndpointDoing",
                [
                    (serves_this_model, ONWARD),
                    (sfn.Condition.and_(in_service, sfn.Condition.not_(asynchronous)), delete_real_time),
                    (in_service, remove_scaling),
                    (failed, delete_failed),
                ],
                otherwise=count_busy,
            )
        )
        wait_busy.next(describe)
        delete_failed.next(count_busy)
        delete_real_time.next(count_busy)
        create_endpoint.next(start_polls)
        update_endpoint.next(start_polls)

        # ---- wait until the endpoint runs the new config ----
        # A task token parked for SageMaker's "Endpoint State Change" event wakes the wait as soon
        # as the endpoint settles; the token times out after `poll_interval_s`, so DescribeEndpoint
        # is also checked at that bounded interval (a lost event costs one interval).
        check = failure.catch(parts.describe_endpoint(self, "CheckEndpoint"))
        wait = tasks.LambdaInvoke(
            self,
            "WaitForEndpoint",
            lambda_function=park_function,
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            payload=sfn.TaskInput.from_object({"taskToken": sfn.JsonPath.task_token, "endpointName": endpoint_name}),
            task_timeout=sfn.Timeout.duration(Duration.seconds(poll_interval_s)),
            result_path=_DISCARD,
        )
        wait.add_catch(check, errors=["States.Timeout"], result_path=_DISCARD)
        # If parking itself fails, fall back to plain polling rather than failing the deployment.
        wait.add_catch(
            sfn.Wait(self, "PollEndpointInstead", time=sfn.WaitTime.duration(Duration.seconds(poll_interval_s))).next(
                check
            ),
            errors=["States.ALL"],
            result_path=_DISCARD,
        )
        count = sfn.Pass(
            self, "CountPoll", parameters={"count.$": "States.MathAdd($.polls.count, 1)"}, result_path="$.polls"
        )
        with_reason = sfn.Pass(
            self,
            "AddSageMakerReason",
            parameters={
                "reason": sfn.JsonPath.format(
                    "{}: {}",
                    sfn.JsonPath.string_at("$.failure.summary"),
                    sfn.JsonPath.string_at("$.endpoint.detail.FailureReason"),
                )
            },
            result_path="$.failure",
        ).next(failure)
        without_reason = sfn.Pass(
            self,
            "NoSageMakerReason",
            parameters={"reason.$": "$.failure.summary"},
            result_path="$.failure",
        ).next(failure)
        has_reason = self.choice(
            "HasSageMakerReason",
            [(sfn.Condition.is_present("$.endpoint.detail.FailureReason"), with_reason)],
            otherwise=without_reason,
        )
        rolled_back = sfn.Pass(
            self,
            "EndpointKeptOldModel",
            parameters={
                "summary": sfn.JsonPath.format(
                    "the endpoint update did not take effect; the endpoint still serves {}",
                    sfn.JsonPath.string_at("$.endpoint.config"),
                )
            },
            result_path="$.failure",
        ).next(has_reason)
        endpoint_failed = sfn.Pass(
            self,
            "EndpointFailedReason",
            parameters={"summary": f"endpoint {endpoint_name} failed"},
            result_path="$.failure",
        ).next(has_reason)
        timed_out = failure.fail_with(
            self,
            "EndpointTooSlow",
            f"the endpoint was not InService after {poll_interval_s * max_polls} seconds",
        )
        start_polls.next(wait).next(check).next(
            self.choice(
                "IsNewModelServing",
                [
                    (serves_this_model, ONWARD),
                    (in_service, rolled_back),
                    (failed, endpoint_failed),
                    (sfn.Condition.number_greater_than_equals("$.polls.count", max_polls), timed_out),
                ],
                otherwise=count,
            )
        )
        count.next(wait)
        self.begin(describe)


class GoLive(Step):
    """The endpoint serves the new model: apply autoscaling (a failure is only reported), retire
    the previously live model, mark this one live, point `__live__` at it, notify (a notice that
    cannot be sent is only left in the history), release the lock."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        parts: _Parts,
        failure: DeployFailure,
        *,
        scaling_function: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        read_live = tasks.DynamoGetItem(
            self,
            "ReadLivePointer",
            table=parts.registry,
            key={"modelId": S(LIVE_POINTER_ID)},
            consistent_read=True,
            result_path="$.live",
        )
        retire = parts.registry_update(
            self,
            "RetirePreviousModel",
            "SET #status = :retired, updatedAt = :now",
            {":retired": S(STATUS_RETIRED)},
            model_path="$.live.Item.liveModelId.S",
        )
        mark_live = parts.registry_update(
            self,
            "MarkLive",
            "SET #status = :live, endpointName = :endpoint, updatedAt = :now REMOVE failureReason",
            {":live": S(STATUS_LIVE), ":endpoint": S(parts.endpoint_name)},
        )
        # An update, not a put: the cleanup may have marked the pointer (stack being deleted) since
        # this run read it, before it stops the runs it finds; a put would erase the mark and a later
        # heal would re-create the endpoint as an orphan. A marked pointer ends the run instead.
        point = tasks.DynamoUpdateItem(
            self,
            "PointLiveModel",
            table=parts.registry,
            key={"modelId": S(LIVE_POINTER_ID)},
            update_expression="SET liveModelId = :model, endpointName = :endpoint, endpointConfigName = :model, "
            "updatedAt = :now REMOVE endpointError, endpointErrorAt",
            condition_expression="attribute_not_exists(#deleting)",
            expression_attribute_names={"#deleting": STACK_DELETING_ATTRIBUTE},
            expression_attribute_values={
                ":model": _str("$.modelId"),
                ":endpoint": S(parts.endpoint_name),
                ":now": _str(_NOW),
            },
            result_path=_DISCARD,
        )
        point.add_catch(
            parts.release_lock(
                self,
                "ReleaseLockStackDeletedMeanwhile",
                then=sfn.Fail(
                    self,
                    "StackDeletedMeanwhile",
                    error="StackBeingDeleted",
                    cause="the stack is being deleted: the live pointer keeps its deletion mark",
                ),
            ),
            errors=["DynamoDB.ConditionalCheckFailedException"],
            result_path=_DISCARD,
        )
        live_text = (
            'Model {} (dataset {}) is live on endpoint {}. Put the phrase "{}" in your prompts to get '
            'your subject, e.g. "{} on a beach at sunset".'
        )
        live_values = (
            sfn.JsonPath.string_at("$.modelId"),
            sfn.JsonPath.string_at("$.model.Item.dataset.S"),
            parts.endpoint_name,
            sfn.JsonPath.string_at("$.model.Item.instancePrompt.S"),
            sfn.JsonPath.string_at("$.model.Item.instancePrompt.S"),
        )
        # The files the validation skipped (with "did you mean" hints), as the training recorded them.
        notify = parts.publish(
            self,
            "NotifyLive",
            "DreamBooth: new model is live",
            sfn.JsonPath.format(
                live_text + " Skipped files: {}.", *live_values, sfn.JsonPath.string_at("$.model.Item.skippedFiles.S")
            ),
        )
        notify_unrecorded = parts.publish(
            self,
            "NotifyLiveSkippedUnknown",
            "DreamBooth: new model is live",
            sfn.JsonPath.format(live_text, *live_values),
        )
        release = parts.release_lock(self, "ReleaseLock", then=sfn.Succeed(self, "ModelIsLive"))
        apply_scaling = parts.scaling_task(self, "ApplyAutoscaling", scaling_function, "register")
        # The new model serves either way: a scaling failure is reported, not a failed deployment.
        apply_scaling.add_catch(
            parts.publish(
                self,
                "NotifyAutoscalingFailed",
                "DreamBooth: autoscaling not applied",
                sfn.JsonPath.format(
                    "Model {} serves on endpoint {}, but its autoscaling could not be registered: {}",
                    sfn.JsonPath.string_at("$.modelId"),
                    parts.endpoint_name,
                    sfn.JsonPath.string_at("$.error.Cause"),
                ),
            ).next(read_live),
            errors=["States.ALL"],
            result_path="$.error",
        )
        apply_scaling.next(read_live)
        # Once `__live__` points at the new model, the deployment has happened: a notice that cannot
        # be sent is not a failed deployment (the failure path would mark the now-live model failed).
        # The history keeps the error; the lock is released as after a notice that went out.
        for state in (notify, notify_unrecorded):
            state.add_catch(release, errors=["States.ALL"], result_path="$.notifyError")
        for state in (read_live, retire, mark_live, point):
            state.add_catch(
                sfn.Pass(
                    self,
                    f"{state.node.id}Error",
                    parameters={
                        "reason": sfn.JsonPath.format(
                            "the endpoint serves the new model, but recording it failed: {}",
                            sfn.JsonPath.string_at("$.error.Cause"),
                        )
                    },
                    result_path="$.failure",
                ).next(failure),
                errors=["States.ALL"],
                result_path="$.error",
            )
        read_live.next(
            self.choice(
                "WasAnotherModelLive",
                [
                    (
                        sfn.Condition.and_(
                            sfn.Condition.is_present("$.live.Item.liveModelId.S"),
                            sfn.Condition.not_(
                                sfn.Condition.string_equals_json_path("$.live.Item.liveModelId.S", "$.modelId")
                            ),
                        ),
                        retire,
                    )
                ],
                otherwise=mark_live,
            )
        )
        retire.next(mark_live)
        mark_live.next(point).next(
            self.choice(
                "WereSkippedFilesRecorded",
                [(sfn.Condition.is_present("$.model.Item.skippedFiles.S"), notify)],
                otherwise=notify_unrecorded,
            )
        )
        notify.next(release)
        notify_unrecorded.next(release)
        self.begin(apply_scaling)


@dataclass(frozen=True)
class AsyncOutput:
    """Where an asynchronous endpoint config sends its answers, failures and notices."""

    output_uri: str
    failure_uri: str
    success_topic: sns.ITopic
    error_topic: sns.ITopic


def is_live_model() -> sfn.Condition:
    """`__live__` (read into $.live) points at this execution's model."""
    return sfn.Condition.and_(
        sfn.Condition.is_present("$.live.Item.liveModelId.S"),
        sfn.Condition.string_equals_json_path("$.live.Item.liveModelId.S", "$.modelId"),
    )


def caught_error_for(scope: Construct, path: str, failure_chain: sfn.IChainable) -> sfn.IChainable:
    return sfn.Pass(
        scope,
        "EndpointLookupError",
        parameters={
            "reason": sfn.JsonPath.format("could not look up the endpoint: {}", sfn.JsonPath.string_at(f"{path}.Cause"))
        },
        result_path="$.failure",
    ).next(failure_chain)
