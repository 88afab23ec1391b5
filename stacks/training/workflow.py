"""The training state machine: one execution per burst of uploads to one dataset.

Input `{"dataset": "<name>", "generation": <n>, "extensions": {"count": 0}}` (started by the upload listener under the
deterministic name `<dataset>-<n>`). Steps: wait until the dataset's quiet window has passed
(re-reading it: later uploads push it forward), close the upload generation, snapshot the
dataset, claim the snapshot (a conditional put: a snapshot already trained on ends the run
quietly), register the model version, validate the dataset (an invalid one ends the run with a
notification; no training job is created), train with `createTrainingJob.sync` (output
model.tar.gz), unpack it to an S3 prefix and add JumpStart's inference code when it lacks it (the
packaging Lambda, lambda/training/model_package.py), record the artifact and loss, publish the training metrics (time, billable time, loss) to CloudWatch, and
run the deploy state machine.

With managed spot training (the default), a job SageMaker stops because spot capacity never came
(or kept being taken back) within the wait limit is trained again at once on demand, as job
`<training job name>-od`; the notification says so. Only if that fails too does the run fail.

Every failure goes through one chain: a Lambda (training_failure.py) turns the error into one
line (SageMaker's FailureReason, never its JSON) and says whether it is retryable (capacity, spot,
internal errors); the registry records both and the notification says how to go on.

Retrain: input `{"dataset": ..., "retrain": {"modelId": ..., "attempt": n}}` (started by the API's
POST /models/{id}/retrain under the name `<modelId>_retrain_<n>`) skips the debounce, snapshot and
validation: it reads the model's registry item, rebuilds the snapshot and the validation result
from the staged copy the first run trained on, and trains it again as job `<modelId>-r<n>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from dreambooth_shared.contract import (
    DATASET_ITEM_PREFIX,
    METRIC_BILLABLE_SECONDS,
    METRIC_TRAIN_LOSS,
    METRIC_TRAINING_SECONDS,
    PIPELINE_SERVICE,
    SNAPSHOT_ITEM_PREFIX,
    STAGE_PREPARING_RETRAIN,
    STAGE_RECORDING_TRAINING_START,
    STAGE_TRAINING,
    STAGE_TRAINING_ON_DEMAND,
    STATUS_DEPLOYING,
    STATUS_FAILED,
    STATUS_TRAINING,
    STATUS_VALIDATING,
    training_quota_name,
)
from stacks.registry.construct import DISCARD as _DISCARD
from stacks.registry.construct import NOW as _NOW
from stacks.registry.construct import S
from stacks.registry.construct import str_at as _str
from stacks.shared.steps import ONWARD, Step

# After this many extensions of the quiet window (uploads that never stop), train on what is there.
# Each extension is one turn of the debounce loop in the execution's history (sfn_budget.py): the
# stack checks at synth that the longest run fits Step Functions' 25,000 events.
MAX_QUIET_WINDOW_EXTENSIONS = 100
# The debounce loop, by state name, for the history-event budget (a way round it; the longest counts).
QUIET_WINDOW_LOOPS = (
    ("ReadUploadWindow", "WaitForQuietWindow", "CloseUploadWindow", "WindowWasExtended", "UploadsKeepComing"),
)
TRAINING_VOLUME_GB = 50
TRAINING_JOB_RULE = "StepFunctionsGetEventsForSageMakerTrainingJobsRule"
# DescribeTrainingJob's SecondaryStatus of a spot job SageMaker stopped for want of capacity
# (MaxWaitTimeExceeded) or after interruptions (Interrupted). The .sync task fails with the whole
# DescribeTrainingJob answer as its Cause (JSON), so the Cause is matched for them, with or
# without a space after the colon. An interruption that the job survived shows only in
# SecondaryStatusTransitions, which these patterns do not match.
# Execution <modelId>_retrain_<n> (the API names it; "_" is never in a dataset name, so it never
# meets a debounce execution <dataset>-<generation>), training job <modelId>-r<n>.
RETRAIN_EXECUTION_SUFFIX = "_retrain_"
SPOT_STOP_PATTERNS = (
    "*MaxWaitTimeExceeded*",
    '*"SecondaryStatus":"Interrupted"*',
    '*"SecondaryStatus": "Interrupted"*',
)
# Name suffix of the on-demand retry of a spot job SageMaker stopped.
ON_DEMAND_SUFFIX = "-od"


@dataclass(frozen=True)
class TrainingJob:
    """What every training job of the pipeline is given (see `training_task`)."""

    role: iam.IRole
    image: str
    base_model_uri: str
    metric_definitions: Sequence[dict[str, str]]
    instance_type: str
    max_runtime_s: int


class TrainingWorkflow(Construct):
    """Builds the training chain; `definition` is the first state (see module docstring).

    The chain is named steps linked top-down at the end of `__init__`; every failure goes to
    `TrainingFailure`.

    Props:
      registry_table / state_table: see ModelRegistry.
      topic: where rejections and failures are published.
      snapshot_function / validate_function: the dataset Lambdas.
      retrain_function: rebuilds a failed model's snapshot and validation from its staged copy.
      explain_function: turns any failure into {reason, retryable, message} (training_failure.py).
      package_function: unpacks the training output ({"modelUri"}: its model.tar.gz) to a prefix and adds
        code/inference.py to it.
      training_role: role the SageMaker training job runs with.
      training_image / base_model_uri: from the JumpStart lock.
      metric_definitions: regexes SageMaker applies to the training log.
      instance_type / max_runtime_s: training resources and hard time limit.
      spot_max_wait_s: None (default) trains on demand; a number turns managed spot training on,
        with this MaxWaitTimeInSeconds (>= max_runtime_s).
      metrics_namespace: CloudWatch namespace of the training metrics (TrainingSeconds,
        BillableTrainingSeconds, TrainLoss; dimension service=dreambooth-pipeline).
      quiet_window_s: the debounce window (the input carries `extensions.count`, starting at 0).
      deploy_state_machine: run (and waited for) once the model is trained.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        registry_table: dynamodb.ITable,
        state_table: dynamodb.ITable,
        topic: sns.ITopic,
        snapshot_function: lambda_.IFunction,
        validate_function: lambda_.IFunction,
        retrain_function: lambda_.IFunction,
        explain_function: lambda_.IFunction,
        package_function: lambda_.IFunction,
        training_role: iam.IRole,
        training_image: str,
        base_model_uri: str,
        metric_definitions: Sequence[dict[str, str]],
        instance_type: str,
        max_runtime_s: int,
        quiet_window_s: int,
        deploy_state_machine: sfn.IStateMachine,
        metrics_namespace: str,
        spot_max_wait_s: Optional[int] = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if spot_max_wait_s is not None and spot_max_wait_s < max_runtime_s:
            raise ValueError("spot_max_wait_s must be at least max_runtime_s (SageMaker refuses it otherwise)")
        self._metrics_namespace = metrics_namespace
        self.training_role = training_role
        parts = _Parts(registry=registry_table, state=state_table, topic=topic)
        job = TrainingJob(
            role=training_role,
            image=training_image,
            base_model_uri=base_model_uri,
            metric_definitions=metric_definitions,
            instance_type=instance_type,
            max_runtime_s=max_runtime_s,
        )

        failure = TrainingFailure(self, "Failure", parts, explain_function)
        debounce = Debounce(self, "Debounce", parts, quiet_window_s)
        intake = SnapshotAndValidate(
            self, "Intake", parts, failure, snapshot_function=snapshot_function, validate_function=validate_function
        )
        train = Train(self, "Train", parts, failure, job, spot_max_wait_s)
        record = PackageAndRecord(
            self, "Record", parts, failure, package_function=package_function, metrics_namespace=metrics_namespace
        )
        deploy = Deploy(self, "Deploy", deploy_state_machine)
        retrain = RetrainEntry(self, "Retrain", parts, failure, retrain_function)

        # Every loop of the machine with the most turns it can take (sfn_budget.total_events).
        self.loops = ((QUIET_WINDOW_LOOPS, debounce.max_extensions),)
        self.definition = (
            sfn.Choice(self, "IsRetrain").when(sfn.Condition.is_present("$.retrain"), retrain).otherwise(debounce)
        )
        retrain.then(train)
        debounce.then(intake).then(train).then(record).then(deploy)

    def grant_training(self, role: iam.IRole) -> None:
        """What the state machine's role needs for `createTrainingJob.sync`."""
        stack = Stack.of(self)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateTrainingJob",
                    "sagemaker:DescribeTrainingJob",
                    "sagemaker:StopTrainingJob",
                    "sagemaker:AddTags",
                ],
                resources=[stack.format_arn(service="sagemaker", resource="training-job", resource_name="*")],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:ListTags"],
                resources=["*"],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[stack.format_arn(service="events", resource="rule", resource_name=TRAINING_JOB_RULE)],
            )
        )
        # PutMetricData has no resource-level permissions; the namespace condition narrows it.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": self._metrics_namespace}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.training_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )


@dataclass(frozen=True)
class _Parts:
    """What every step of the training chain uses, and the states it builds from them."""

    registry: dynamodb.ITable
    state: dynamodb.ITable
    topic: sns.ITopic

    def registry_update(
        self, scope: Construct, state_id: str, expression: str, values: dict[str, Any]
    ) -> tasks.DynamoUpdateItem:
        return tasks.DynamoUpdateItem(
            scope,
            state_id,
            table=self.registry,
            key={"modelId": _str("$.snapshot.modelId")},
            update_expression=expression,
            expression_attribute_names={"#status": "status"} if "#status" in expression else None,
            expression_attribute_values={**values, ":now": _str(_NOW)},
            result_path=_DISCARD,
        )

    def publish(self, scope: Construct, state_id: str, subject: str, message: str) -> tasks.SnsPublish:
        body = (
            sfn.TaskInput.from_json_path_at(message) if message.startswith("$.") else sfn.TaskInput.from_text(message)
        )
        return tasks.SnsPublish(scope, state_id, topic=self.topic, subject=subject, message=body, result_path=_DISCARD)

    def upload_window_key(self) -> dict[str, tasks.DynamoAttributeValue]:
        return {"pk": S(sfn.JsonPath.format(DATASET_ITEM_PREFIX + "{}", sfn.JsonPath.string_at("$.dataset")))}


def _error_reason(stage: str) -> str:
    return sfn.JsonPath.format(
        stage + " failed: {}: {}", sfn.JsonPath.string_at("$.error.Error"), sfn.JsonPath.string_at("$.error.Cause")
    )


class TrainingFailure(Step):
    """Where every failure ends: a Lambda explains it (one line, retryable or not), the registry
    records it (if the model was registered), it is notified, and the run fails. Needs
    `$.failure.reason`; `catch` sends a state's errors here."""

    def __init__(self, scope: Construct, construct_id: str, parts: _Parts, explain_function: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        explain = tasks.LambdaInvoke(
            self,
            "ExplainFailure",
            lambda_function=explain_function,  # the whole state is its input
            payload_response_only=True,
            result_path="$.failure",
            retry_on_service_exceptions=True,
        )
        unexplained = sfn.Pass(
            self,
            "FailureUnexplained",
            parameters={
                "reason.$": "$.failure.reason",
                "retryable": False,
                "message.$": "States.Format('Dataset {}: {}. The live model (if any) is unchanged.', "
                "$.dataset, $.failure.reason)",
            },
            result_path="$.failure",
        )
        explain.add_catch(unexplained, errors=["States.ALL"], result_path="$.explainError")
        mark = parts.registry_update(
            self,
            "MarkTrainingFailed",
            "SET #status = :failed, failureReason = :reason, retryable = :retryable, updatedAt = :now",
            {
                ":failed": S(STATUS_FAILED),
                ":reason": _str("$.failure.reason"),
                ":retryable": tasks.DynamoAttributeValue.boolean_from_json_path(
                    sfn.JsonPath.string_at("$.failure.retryable")
                ),
            },
        )
        notify = parts.publish(self, "NotifyTrainingFailure", "DreamBooth: training failed", "$.failure.message")
        fail = sfn.Fail(self, "TrainingFailed", error="TrainingFailed", cause="see the notification and the registry")
        mark.add_catch(notify, errors=["States.ALL"], result_path=_DISCARD)
        has_model = self.choice(
            "WasModelRegistered", [(sfn.Condition.is_present("$.snapshot.modelId"), mark)], otherwise=notify
        )
        explain.next(has_model)
        unexplained.next(has_model)
        mark.next(notify)
        notify.next(fail)
        self.begin(explain)

    def catch(self, state: Any, stage: str) -> Any:
        """Any error of `state` fails the run; `reason` is the fallback when the explaining Lambda itself fails."""
        state.add_catch(
            sfn.Pass(
                state.node.scope,
                f"{state.node.id}Error",
                parameters={"stage": stage, "reason": _error_reason(stage)},
                result_path="$.failure",
            ).next(self),
            errors=["States.ALL"],
            result_path="$.error",
        )
        return state


class Debounce(Step):
    """The quiet-window debounce: wait until the dataset's uploads have stopped for one window
    (re-reading it: later uploads push it forward), then close the upload generation."""

    def __init__(self, scope: Construct, construct_id: str, parts: _Parts, quiet_window_s: int) -> None:
        super().__init__(scope, construct_id)
        self.max_extensions = MAX_QUIET_WINDOW_EXTENSIONS
        # The first upload started this execution: wait one window before reading, so that the
        # rest of a burst of uploads is already recorded and usually no extension is needed.
        start = sfn.Wait(self, "WaitOneQuietWindow", time=sfn.WaitTime.duration(Duration.seconds(quiet_window_s)))
        read_window = tasks.DynamoGetItem(
            self,
            "ReadUploadWindow",
            table=parts.state,
            consistent_read=True,
            key=parts.upload_window_key(),
            result_selector={"quietUntil.$": "$.Item.quietUntil.S"},
            result_path="$.window",
        )
        wait_quiet = sfn.Wait(self, "WaitForQuietWindow", time=sfn.WaitTime.timestamp_path("$.window.quietUntil"))
        close_window = tasks.DynamoUpdateItem(
            self,
            "CloseUploadWindow",
            table=parts.state,
            key=parts.upload_window_key(),
            update_expression="SET active = :false",
            # Unchanged and really over (a Wait may wake a little early): else wait again.
            condition_expression="quietUntil = :waited AND quietUntil <= :now AND generation = :generation",
            expression_attribute_values={
                ":false": tasks.DynamoAttributeValue.from_boolean(False),
                ":waited": _str("$.window.quietUntil"),
                ":now": _str(_NOW),
                ":generation": tasks.DynamoAttributeValue.number_from_string(
                    sfn.JsonPath.format("{}", sfn.JsonPath.string_at("$.generation"))
                ),
            },
            result_path=_DISCARD,
        )
        # After MAX_QUIET_WINDOW_EXTENSIONS (uploads that never stop), train on what is there.
        force_close = tasks.DynamoUpdateItem(
            self,
            "ForceCloseUploadWindow",
            table=parts.state,
            key=parts.upload_window_key(),
            update_expression="SET active = :false",
            expression_attribute_values={":false": tasks.DynamoAttributeValue.from_boolean(False)},
            result_path=_DISCARD,
        )
        extended = sfn.Pass(
            self,
            "WindowWasExtended",
            parameters={"count.$": "States.MathAdd($.extensions.count, 1)"},
            result_path="$.extensions",
        )
        close_window.add_catch(extended, errors=["DynamoDB.ConditionalCheckFailedException"], result_path=_DISCARD)
        extended.next(
            self.choice(
                "UploadsKeepComing",
                [(sfn.Condition.number_greater_than_equals("$.extensions.count", self.max_extensions), force_close)],
                otherwise=read_window,
            )
        )
        start.next(read_window).next(wait_quiet).next(close_window)
        self.begin(start)
        self.end(force_close, close_window)


class SnapshotAndValidate(Step):
    """Snapshot the dataset, claim the snapshot (one training per snapshot: one already trained
    on ends the run quietly), register the model version, validate the dataset. An invalid one
    ends the run with a notification; no training job is created."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        parts: _Parts,
        failure: TrainingFailure,
        *,
        snapshot_function: lambda_.IFunction,
        validate_function: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        snapshot = tasks.LambdaInvoke(
            self,
            "TakeSnapshot",
            lambda_function=snapshot_function,
            payload=sfn.TaskInput.from_object({"dataset": sfn.JsonPath.string_at("$.dataset")}),
            payload_response_only=True,
            result_path="$.snapshot",
            retry_on_service_exceptions=True,
        )
        claim = tasks.DynamoPutItem(
            self,
            "ClaimSnapshot",
            table=parts.state,
            item={
                "pk": S(
                    sfn.JsonPath.format(
                        SNAPSHOT_ITEM_PREFIX + "{}#{}",
                        sfn.JsonPath.string_at("$.dataset"),
                        sfn.JsonPath.string_at("$.snapshot.snapshotHash"),
                    )
                ),
                "modelId": _str("$.snapshot.modelId"),
                "claimedAt": _str(_NOW),
                "execution": _str("$$.Execution.Id"),
            },
            condition_expression="attribute_not_exists(pk)",
            result_path=_DISCARD,
        )
        claim.add_catch(
            sfn.Succeed(self, "SnapshotAlreadyTrained", comment="duplicate or replayed upload events"),
            errors=["DynamoDB.ConditionalCheckFailedException"],
            result_path=_DISCARD,
        )
        register = tasks.DynamoPutItem(
            self,
            "RegisterModel",
            table=parts.registry,
            item={
                "modelId": _str("$.snapshot.modelId"),
                "dataset": _str("$.dataset"),
                "status": S(STATUS_VALIDATING),
                "snapshotHash": _str("$.snapshot.snapshotHash"),
                "createdAt": _str("$.snapshot.createdAt"),
                "updatedAt": _str(_NOW),
                # Lets the run-failure handler find this model if the execution dies uncaught.
                "trainingExecution": _str("$$.Execution.Id"),
            },
            condition_expression="attribute_not_exists(modelId)",
            result_path=_DISCARD,
        )
        validate = tasks.LambdaInvoke(
            self,
            "ValidateDataset",
            lambda_function=validate_function,
            payload=sfn.TaskInput.from_object({"snapshot": sfn.JsonPath.object_at("$.snapshot")}),
            payload_response_only=True,
            result_path="$.validation",
            retry_on_service_exceptions=True,
        )
        failure.catch(snapshot, "taking the dataset snapshot")
        failure.catch(claim, "claiming the snapshot")
        failure.catch(register, "registering the model")
        failure.catch(validate, "validating the dataset")

        reject = (
            parts.registry_update(
                self,
                "MarkInvalid",
                "SET #status = :failed, failureReason = :reason, imageCount = :images, updatedAt = :now",
                {
                    ":failed": S(STATUS_FAILED),
                    ":reason": S(
                        sfn.JsonPath.format("invalid dataset: {}", sfn.JsonPath.string_at("$.validation.reason"))
                    ),
                    ":images": tasks.DynamoAttributeValue.number_from_string(
                        sfn.JsonPath.format("{}", sfn.JsonPath.string_at("$.validation.imageCount"))
                    ),
                },
            )
            .next(
                parts.publish(
                    self,
                    "NotifyInvalid",
                    "DreamBooth: dataset rejected, no training started",
                    sfn.JsonPath.format(
                        "Dataset {} was not trained (model {}): {}. Skipped files: {}. Fix the files under "
                        "datasets/{}/ and upload again; nothing was deleted and no GPU time was used.",
                        sfn.JsonPath.string_at("$.dataset"),
                        sfn.JsonPath.string_at("$.snapshot.modelId"),
                        sfn.JsonPath.string_at("$.validation.reason"),
                        sfn.JsonPath.string_at("$.validation.warningText"),
                        sfn.JsonPath.string_at("$.dataset"),
                    ),
                )
            )
            .next(sfn.Fail(self, "DatasetRejected", error="DatasetRejected", cause="see the model's failureReason"))
        )
        snapshot.next(claim).next(register).next(validate).next(
            self.choice(
                "IsDatasetValid", [(sfn.Condition.boolean_equals("$.validation.valid", True), ONWARD)], otherwise=reject
            )
        )
        self.begin(snapshot)


class RetrainEntry(Step):
    """Registry item -> `$.snapshot` and `$.validation` as the first run had them (staged copy)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        parts: _Parts,
        failure: TrainingFailure,
        retrain_function: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        read = tasks.DynamoGetItem(
            self,
            "ReadModelToRetrain",
            table=parts.registry,
            key={"modelId": _str("$.retrain.modelId")},
            consistent_read=True,
            result_path="$.model",
        )
        prepare = tasks.LambdaInvoke(
            self,
            "PrepareRetrain",
            lambda_function=retrain_function,
            payload=sfn.TaskInput.from_object(
                {"model": sfn.JsonPath.object_at("$.model"), "retrain": sfn.JsonPath.object_at("$.retrain")}
            ),
            payload_response_only=True,
            result_path="$.prepared",
            retry_on_service_exceptions=True,
        )
        use = sfn.Pass(
            self,
            "UseStagedSnapshot",
            parameters={
                "dataset.$": "$.dataset",
                "retrain.$": "$.retrain",
                "snapshot.$": "$.prepared.snapshot",
                "validation.$": "$.prepared.validation",
            },
        )
        # Before the snapshot is rebuilt, the failure chain still needs the model's id to mark it.
        failed = (
            sfn.Pass(
                self,
                "RetrainPreparationError",
                parameters={"stage": STAGE_PREPARING_RETRAIN, "reason": _error_reason(STAGE_PREPARING_RETRAIN)},
                result_path="$.failure",
            )
            .next(
                sfn.Pass(
                    self, "RetrainModelId", parameters={"modelId.$": "$.retrain.modelId"}, result_path="$.snapshot"
                )
            )
            .next(failure)
        )
        for state in (read, prepare):
            state.add_catch(failed, errors=["States.ALL"], result_path="$.error")
        read.next(prepare).next(use)
        self.begin(read)
        self.end(use)


class Train(Step):
    """Record the training start and train with `createTrainingJob.sync` (output model.tar.gz).

    With managed spot training, a job SageMaker stopped for want of spot capacity, or refused
    because the spot quota is too low (ResourceLimitExceeded), is recorded (`trainingRetry`),
    notified and trained again at once on demand (job `<name>-od`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        parts: _Parts,
        failure: TrainingFailure,
        job: TrainingJob,
        spot_max_wait_s: Optional[int],
    ) -> None:
        super().__init__(scope, construct_id)
        mark_training = failure.catch(
            parts.registry_update(
                self,
                "MarkTraining",
                "SET #status = :training, instancePrompt = :instance, classPrompt = :class, hyperparameters = :hp, "
                "trainingJobName = :job, imageCount = :images, skippedFiles = :skipped, updatedAt = :now",
                {
                    ":training": S(STATUS_TRAINING),
                    ":instance": _str("$.validation.instancePrompt"),
                    ":class": _str("$.validation.classPrompt"),
                    ":hp": tasks.DynamoAttributeValue.map_from_json_path("$.validation.hyperparametersItem"),
                    ":job": _str("$.snapshot.trainingJobName"),
                    ":images": tasks.DynamoAttributeValue.number_from_string(
                        sfn.JsonPath.format("{}", sfn.JsonPath.string_at("$.validation.imageCount"))
                    ),
                    ":skipped": _str("$.validation.warningText"),
                },
            ),
            STAGE_RECORDING_TRAINING_START,
        )
        train = training_task(self, job, spot_max_wait_s)
        if spot_max_wait_s is not None:
            on_demand = training_task(self, job, None, state_id="TrainModelOnDemand", job_suffix=ON_DEMAND_SUFFIX)
            failure.catch(on_demand, STAGE_TRAINING_ON_DEMAND)  # after a spot stop
            self._catch_spot_stop(parts, failure, train, spot_max_wait_s, on_demand, job.instance_type)
            self.end(on_demand)
        failure.catch(train, STAGE_TRAINING)
        mark_training.next(train)
        self.begin(mark_training)
        self.end(train)

    def _catch_spot_stop(
        self,
        parts: _Parts,
        failure: TrainingFailure,
        train: sfn.CustomState,
        max_wait_s: int,
        on_demand: sfn.IChainable,
        instance_type: str,
    ) -> None:
        """A spot job stopped for want of capacity, or refused by the spot quota: say so (registry and
        notice), and train the same snapshot on demand. The spot error stays in `$.onDemandRetry`,
        so that an on-demand failure on its own quota can name both quotas (training_failure.py)."""
        minutes = max_wait_s // 60
        job = sfn.JsonPath.string_at("$.snapshot.trainingJobName")
        spot_quota = training_quota_name(instance_type, spot=True)
        capacity = sfn.Pass(
            self,
            "SpotCapacityMissing",
            result_path="$.onDemandRetry",
            parameters={
                "why": f"spot capacity did not come within spotMaxWaitMinutes ({minutes} min): trained on demand",
                "notice": sfn.JsonPath.format(
                    "No spot capacity for training job {} within spotMaxWaitMinutes (" + str(minutes) + " min): "
                    "SageMaker stopped it, and the same photos are now trained on demand (job {}"
                    + ON_DEMAND_SUFFIX
                    + "), at the on-demand price.",
                    job,
                    job,
                ),
            },
        )
        quota = sfn.Pass(
            self,
            "SpotQuotaRefused",
            result_path="$.onDemandRetry",
            parameters={
                "why": f"the spot training quota ({spot_quota}) refused the job (ResourceLimitExceeded): trained on "
                "demand; raise that quota in Service Quotas to train on spot",
                "notice": sfn.JsonPath.format(
                    # No quotes in the text: moto's States.Format mishandles escaped ones (AWS does not).
                    'SageMaker refused spot training job {}: the account quota "' + spot_quota + '" is too low '
                    "(ResourceLimitExceeded; new accounts often have 0). The same photos are now trained on demand "
                    "(job {}" + ON_DEMAND_SUFFIX + "), at the on-demand price. To train on spot next time, raise that "
                    "quota in Service Quotas (SageMaker).",
                    job,
                    job,
                ),
                "spotCause": sfn.JsonPath.string_at("$.error.Cause"),
            },
        )
        record = parts.registry_update(
            self,
            "RecordOnDemandRetry",
            "SET trainingJobName = :job, trainingRetry = :why, updatedAt = :now",
            {":job": S(sfn.JsonPath.format("{}" + ON_DEMAND_SUFFIX, job)), ":why": _str("$.onDemandRetry.why")},
        )
        record.add_catch(on_demand, errors=["States.ALL"], result_path=_DISCARD)  # bookkeeping only
        notify = parts.publish(
            self,
            "NotifyOnDemandRetry",
            "DreamBooth: training again on demand",
            sfn.JsonPath.string_at("$.onDemandRetry.notice"),
        )
        notify.add_catch(on_demand, errors=["States.ALL"], result_path=_DISCARD)
        record.next(notify).next(on_demand)
        capacity.next(record)
        quota.next(record)
        cause = "$.error.Cause"
        choice = self.choice(
            "WasSpotCapacityMissing",
            [
                (
                    sfn.Condition.or_(
                        *(sfn.Condition.string_matches(cause, pattern) for pattern in SPOT_STOP_PATTERNS)
                    ),
                    capacity,
                ),
                # CreateTrainingJob's ResourceLimitExceeded names the quota it hit in SageMaker's own message,
                # which the Cause carries whatever Step Functions calls the error (AWS's examples show
                # SageMaker.ResourceLimitExceededException) and whether it wraps the message in the SDK's
                # "(Service: ...; Error Code: ...)": the quota's name alone decides.
                (sfn.Condition.string_matches(cause, f"*{spot_quota}*"), quota),
            ],
            otherwise=sfn.Pass(
                self,
                "TrainModelSpotError",
                parameters={"stage": STAGE_TRAINING, "reason": _error_reason(STAGE_TRAINING)},
                result_path="$.failure",
            ).next(failure),
        )
        train.add_catch(choice, errors=["States.TaskFailed"], result_path="$.error")


class PackageAndRecord(Step):
    """Add JumpStart's inference code to the output when it lacks it (model_package.py), record
    the artifact and loss, and publish the training metrics (time, billable time, loss)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        parts: _Parts,
        failure: TrainingFailure,
        *,
        package_function: lambda_.IFunction,
        metrics_namespace: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self._metrics_namespace = metrics_namespace
        package = failure.catch(
            tasks.LambdaInvoke(
                self,
                "PackageModel",
                lambda_function=package_function,
                payload=sfn.TaskInput.from_object({"modelUri": sfn.JsonPath.string_at("$.training.artifactUri")}),
                payload_response_only=True,
                result_selector={"modelDataUri.$": "$.modelDataUri", "codeAdded.$": "$.added"},
                result_path="$.package",
                retry_on_service_exceptions=True,
            ),
            "adding the inference code to the model",
        )
        record_with_loss = failure.catch(
            parts.registry_update(
                self,
                "RecordTrainedModel",
                "SET artifactUri = :artifact, trainLoss = :loss, #status = :deploying, updatedAt = :now",
                {
                    ":artifact": _str("$.package.modelDataUri"),
                    ":loss": tasks.DynamoAttributeValue.number_from_string(
                        sfn.JsonPath.format(
                            "{}", sfn.JsonPath.array_get_item(sfn.JsonPath.list_at("$.training.trainLoss"), 0)
                        )
                    ),
                    ":deploying": S(STATUS_DEPLOYING),
                },
            ),
            "recording the trained model",
        )
        record_without_loss = failure.catch(
            parts.registry_update(
                self,
                "RecordTrainedModelWithoutLoss",
                "SET artifactUri = :artifact, #status = :deploying, updatedAt = :now",
                {":artifact": _str("$.package.modelDataUri"), ":deploying": S(STATUS_DEPLOYING)},
            ),
            "recording the trained model",
        )
        package.next(
            self.choice(
                "HasTrainLoss",
                [(sfn.Condition.is_present("$.training.trainLoss[0]"), record_with_loss)],
                otherwise=record_without_loss,
            )
        )
        record_with_loss.next(self._publish_metrics(with_loss=True))
        record_without_loss.next(self._publish_metrics(with_loss=False))
        self.begin(package)

    def _publish_metrics(self, *, with_loss: bool) -> sfn.CustomState:
        """PutMetricData with the job's training and billable seconds (and loss); never fails the run."""
        suffix = "" if with_loss else "WithoutLoss"
        dimensions = [{"Name": "service", "Value": PIPELINE_SERVICE}]
        data = [
            {
                "MetricName": METRIC_TRAINING_SECONDS,
                "Unit": "Seconds",
                "Dimensions": dimensions,
                "Value.$": "$.training.seconds",
            },
            {
                "MetricName": METRIC_BILLABLE_SECONDS,
                "Unit": "Seconds",
                "Dimensions": dimensions,
                "Value.$": "$.training.billableSeconds",
            },
        ]
        if with_loss:
            data.append(
                {
                    "MetricName": METRIC_TRAIN_LOSS,
                    "Unit": "None",
                    "Dimensions": dimensions,
                    "Value.$": "$.training.trainLoss[0]",
                }
            )
        publish = sfn.CustomState(
            self,
            f"PublishTrainingMetrics{suffix}",
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:cloudwatch:putMetricData",
                "Parameters": {"Namespace": self._metrics_namespace, "MetricData": data},
                # PutMetricData answers {}: kept beside the training result (a null ResultPath is dropped
                # from a CustomState's JSON by CDK, which would replace the whole state with {}).
                "ResultPath": "$.training.metricsPublished",
                "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 2, "BackoffRate": 2}],
            },
        )
        self.catch_onward(publish, errors=["States.ALL"], result_path=_DISCARD)
        self.end(publish)
        return publish


class Deploy(Step):
    """Run the deploy state machine and wait for it; it records and announces its own failures."""

    def __init__(self, scope: Construct, construct_id: str, deploy_state_machine: sfn.IStateMachine) -> None:
        super().__init__(scope, construct_id)
        deploy = tasks.StepFunctionsStartExecution(
            self,
            "DeployModel",
            state_machine=deploy_state_machine,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            input=sfn.TaskInput.from_object({"modelId": sfn.JsonPath.string_at("$.snapshot.modelId")}),
            name=sfn.JsonPath.format("deploy-{}", sfn.JsonPath.string_at("$.snapshot.modelId")),
            associate_with_parent=True,
            result_path=_DISCARD,
        )
        deploy.add_catch(
            sfn.Fail(
                self,
                "DeploymentFailed",
                error="DeploymentFailed",
                cause="see the deploy execution and the model's failureReason",
            ),
            errors=["States.ALL"],
            result_path="$.error",
        )
        deploy.next(sfn.Succeed(self, "Done"))
        self.begin(deploy)


def training_task(
    scope: Construct,
    job: TrainingJob,
    spot_max_wait_s: Optional[int],
    state_id: str = "TrainModel",
    job_suffix: str = "",
) -> sfn.CustomState:
    """`createTrainingJob.sync` for the snapshot in the state (IAM in TrainingWorkflow.grant_training)."""
    # CustomState: the L2 SageMakerCreateTrainingJob cannot take the hyperparameter map from
    # the state, and the hyperparameters differ per dataset.
    name = (
        f"States.Format('{{}}{job_suffix}', $.snapshot.trainingJobName)" if job_suffix else "$.snapshot.trainingJobName"
    )
    return sfn.CustomState(
        scope,
        state_id,
        state_json={
            "Type": "Task",
            "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createTrainingJob.sync",
            "Parameters": {
                "TrainingJobName.$": name,
                "RoleArn": job.role.role_arn,
                "AlgorithmSpecification": {
                    "TrainingImage": job.image,
                    "TrainingInputMode": "File",
                    "MetricDefinitions": list(job.metric_definitions),
                },
                "HyperParameters.$": "$.validation.hyperparameters",
                "InputDataConfig": [
                    {
                        "ChannelName": "training",
                        "DataSource": {
                            "S3DataSource": {
                                "S3DataType": "S3Prefix",
                                "S3Uri.$": "$.validation.trainingInputUri",
                                "S3DataDistributionType": "FullyReplicated",
                            }
                        },
                    },
                    {
                        "ChannelName": "model",
                        "ContentType": "application/x-sagemaker-model",
                        "DataSource": {
                            "S3DataSource": {
                                "S3DataType": "S3Prefix",
                                "S3Uri": job.base_model_uri,
                                "S3DataDistributionType": "FullyReplicated",
                            }
                        },
                    },
                ],
                # SageMaker's default model.tar.gz: the optimized integration is not shown to accept
                # CompressionType (tests/test_optimized_integration_fields.py); the packaging step unpacks
                # it into the prefix the endpoint serves as it is (no multi-GB untar at every start).
                "OutputDataConfig": {"S3OutputPath.$": "$.snapshot.outputUri"},
                "ResourceConfig": {
                    "InstanceCount": 1,
                    "InstanceType": job.instance_type,
                    "VolumeSizeInGB": TRAINING_VOLUME_GB,
                },
                "StoppingCondition": {
                    "MaxRuntimeInSeconds": job.max_runtime_s,
                    **({"MaxWaitTimeInSeconds": spot_max_wait_s} if spot_max_wait_s else {}),
                },
                **({"EnableManagedSpotTraining": True} if spot_max_wait_s else {}),
                "Tags": [{"Key": "dreambooth-pipeline:dataset", "Value.$": "$.dataset"}],
            },
            # Keep describeTrainingJob's datetimes out of the state; `trainLoss` is [] without the metric.
            "ResultSelector": {
                "artifactUri.$": "$.ModelArtifacts.S3ModelArtifacts",
                "trainLoss.$": "$.FinalMetricDataList[?(@.MetricName == 'train_avg_loss')].Value",
                # DescribeTrainingJob leaves these out only for jobs that failed, which never get here.
                "seconds.$": "$.TrainingTimeInSeconds",
                "billableSeconds.$": "$.BillableTimeInSeconds",
            },
            "ResultPath": "$.training",
        },
    )
