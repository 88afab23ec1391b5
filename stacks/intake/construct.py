"""Intake: photos under datasets/<name>/ -> one training per dataset snapshot.

- `DatasetTasks`: the training workflow's first steps, run as Lambda functions over the bucket:
  snapshot (list a dataset and name its snapshot), validate (judge it with dataset_rules.py and
  stage it under datasets/_pipeline/), prepare-retrain (a failed model's inputs from its staged
  snapshot). How a request's dataset is judged: dreambooth_shared/dataset_rules.py (the CLI and the
  API's dataset commit use the same module).
- `UploadTrigger`: S3 "Object Created" (EventBridge) -> upload listener (quiet-window debounce,
  lambda/intake/debounce.py) -> the training state machine.
"""

from __future__ import annotations

import json

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn

from dreambooth_shared.contract import DATASETS_PREFIX, MODELS_PREFIX, STAGING_PREFIX, PipelineEnv
from stacks.config import TrainingConfig
from stacks.notifications.construct import Notifications
from stacks.shared.functions import PipelineFunctions
from stacks.shared.nag import acknowledge, acknowledge_prefix_grants, arn_prefix


class DatasetTasks:
    """The snapshot, validate and prepare-retrain functions (construct ids Snapshot, Validate, PrepareRetrain).

    Attributes: snapshot_function, validate_function, retrain_function, judge_environment (how
    datasets are judged: the API's dataset commit judges staged photos with the same settings).
    """

    def __init__(
        self,
        functions: PipelineFunctions,
        *,
        bucket: s3.IBucket,
        training: TrainingConfig,
        hyperparameters: dict,
        training_script_uri: str,
    ) -> None:
        dataset_environment = {
            PipelineEnv.BUCKET_NAME: bucket.bucket_name,
            PipelineEnv.DEFAULT_INSTANCE_PROMPT: training.default_instance_prompt,
            PipelineEnv.DEFAULT_CLASS_PROMPT: training.default_class_prompt,
            PipelineEnv.DEFAULT_HYPERPARAMETERS: json.dumps(hyperparameters, sort_keys=True),
            PipelineEnv.TRAINING_INSTANCE_TYPE: training.instance_type,
            PipelineEnv.TRAINING_SCRIPT_URI: training_script_uri,
            PipelineEnv.MIN_IMAGES: str(training.min_images),
            PipelineEnv.MAX_IMAGES: str(training.max_images),
            PipelineEnv.MAX_IMAGE_BYTES: str(training.max_image_mb * 1024 * 1024),
        }
        # How datasets are judged (dataset_rules.JudgeSettings reads these).
        self.judge_environment = {
            k: v
            for k, v in dataset_environment.items()
            if k not in (PipelineEnv.BUCKET_NAME, PipelineEnv.TRAINING_SCRIPT_URI)
        }
        self.snapshot_function = functions.function(
            "Snapshot",
            "intake",
            "dataset_tasks.snapshot",
            dataset_environment,
            timeout_s=60,
            description="Lists a dataset and names its snapshot",
        )
        self.validate_function = functions.function(
            "Validate",
            "intake",
            "dataset_tasks.validate",
            dataset_environment,
            timeout_s=300,
            memory_mb=512,
            description="Judges a dataset snapshot and stages it for training",
        )
        self.retrain_function = functions.function(
            "PrepareRetrain",
            "intake",
            "dataset_tasks.prepare_retrain",
            dataset_environment,
            timeout_s=60,
            description="Rebuilds a failed model's training inputs from its staged snapshot for a retrain",
        )

    def grant_bucket(self, bucket: s3.IBucket) -> None:
        """Each function's prefixes: datasets/ read, the staged copy, and models/ (outside the state's 256 KiB)."""
        bucket.grant_read(self.retrain_function, f"{STAGING_PREFIX}*")
        acknowledge_prefix_grants(self.retrain_function.role, bucket, STAGING_PREFIX)
        bucket.grant_read(self.snapshot_function, f"{DATASETS_PREFIX}*")
        bucket.grant_read(self.validate_function, f"{DATASETS_PREFIX}*")
        bucket.grant_put(self.validate_function, f"{STAGING_PREFIX}*")
        # The snapshot's object list and the dataset report live beside the model (models/<dataset>/<version>/),
        # out of the Step Functions state (256 KiB limit).
        bucket.grant_put(self.snapshot_function, f"{MODELS_PREFIX}*")
        bucket.grant_read(self.validate_function, f"{MODELS_PREFIX}*")
        bucket.grant_put(self.validate_function, f"{MODELS_PREFIX}*")
        acknowledge_prefix_grants(self.snapshot_function.role, bucket, DATASETS_PREFIX, MODELS_PREFIX, writes=True)
        acknowledge_prefix_grants(
            self.validate_function.role, bucket, DATASETS_PREFIX, STAGING_PREFIX, MODELS_PREFIX, writes=True
        )


class UploadTrigger:
    """Uploads under datasets/ start the training state machine once a dataset's uploads go quiet.

    Construct ids UploadListener (function) and DatasetUploaded (EventBridge rule).
    Attributes: upload_function, upload_rule.
    """

    def __init__(
        self,
        functions: PipelineFunctions,
        *,
        bucket: s3.IBucket,
        state_table: dynamodb.ITable,
        training_state_machine: sfn.StateMachine,
        training_name: str,
        notifications: Notifications,
        quiet_window_s: int,
    ) -> None:
        scope = functions.scope
        self.upload_function = functions.function(
            "UploadListener",
            "intake",
            "upload_listener.handler",
            {
                PipelineEnv.STATE_TABLE_NAME: state_table.table_name,
                PipelineEnv.TRAINING_STATE_MACHINE_ARN: training_state_machine.state_machine_arn,
                PipelineEnv.TOPIC_ARN: notifications.topic.topic_arn,
                PipelineEnv.QUIET_WINDOW_S: str(quiet_window_s),
            },
            timeout_s=30,
            description="Debounces dataset uploads into one training per snapshot",
        )
        state_table.grant(self.upload_function, "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:PutItem")
        training_state_machine.grant_start_execution(self.upload_function)
        train_executions = Stack.of(scope).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{training_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.upload_function.add_to_role_policy(
            iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[train_executions])
        )
        acknowledge(
            self.upload_function.role,
            "Executions are named per dataset and generation at run time; the listener checks whether "
            "its dataset's execution still runs.",
            f"AwsSolutions-IAM5[Resource::{arn_prefix(scope, 'states')}execution:{training_name}:*]",
        )
        # The topic's key is customer-managed (see Notifications): every publisher needs its kms permissions.
        notifications.grant_publish(self.upload_function.role)
        self.upload_rule = events.Rule(
            scope,
            "DatasetUploaded",
            description="Files arriving under datasets/ in the data bucket",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [bucket.bucket_name]}, "object": {"key": [{"prefix": DATASETS_PREFIX}]}},
            ),
        )
        self.upload_rule.add_target(
            targets.LambdaFunction(self.upload_function, retry_attempts=8, max_event_age=Duration.hours(2))
        )
