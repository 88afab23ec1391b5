"""The pipeline: photos under datasets/<name>/ -> a fine-tuned model live on the endpoint.

Wires the units, each in its own folder: intake (S3 "Object Created" -> upload listener with its
quiet-window debounce -> training), training (snapshot, validation, JumpStart fine-tune with
`createTrainingJob.sync`, packaging), serving (model, endpoint config, create-or-update endpoint,
wait for its state-change event or a bounded poll, autoscaling, go live), the registry, the
notifications topic, the report of runs that ended uncaught and the cleanup on `cdk destroy`.
See docs/pipeline.md for the upload contract and the design.

The units build their resources in this one construct (id `Pipeline`): that keeps every logical id,
the stateful ones (registry tables, notifications key and topics) above all, what it was before the
units had folders of their own.
"""

from __future__ import annotations

from typing import Any, Optional

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from dreambooth_shared.contract import DEPLOY_MACHINE_SUFFIX, TRAINING_MACHINE_SUFFIX
from stacks.cleanup.construct import SageMakerCleanup
from stacks.config import NotificationConfig, ServingConfig, TrainingConfig
from stacks.intake.construct import DatasetTasks, UploadTrigger
from stacks.monitoring.run_failures import RunFailureReport
from stacks.notifications.construct import Notifications
from stacks.registry.construct import ModelRegistry
from stacks.serving.construct import Serving
from stacks.shared.functions import PipelineFunctions
from stacks.shared.logs import retention
from stacks.training.construct import Training, TrainingTasks
from stacks.training.jumpstart_lock import JumpStartArtifacts, JumpStartLock
from stacks.training.roles import SageMakerRoles


class TrainingPipeline(Construct):
    """Everything between an upload and a live model.

    Props:
      bucket: the data bucket (datasets/ read, models/ written).
      training / serving / notifications: typed settings (see stacks/config.py for defaults).
      lock: the JumpStart lock (default: stacks/training/jumpstart.lock.json).
      removal_policy: for the registry tables (default DESTROY; the bucket is never touched).
      log_retention_days: retention of every log group created here (default 30; a CloudWatch value).

    Attributes:
      registry_table (model registry, see stacks/registry/), state_table (bookkeeping), topic,
      topic_key (the topic's customer-managed KMS key: CloudWatch alarms cannot publish with the
      AWS-managed one), training_state_machine, deploy_state_machine (input {"modelId": ...}),
      endpoint_name (created at run time, `<stack name>-sd`), roles (SageMakerRoles), artifacts
      (JumpStart lock values by region), judge_environment (how datasets are judged), the units
      (datasets, training_tasks, training, serving, trigger, run_failures, cleanup) and, for the
      stack's grants, snapshot_function, validate_function, inference_success_topic /
      inference_error_topic (SageMaker's asynchronous inference notices).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        training: TrainingConfig,
        serving: ServingConfig,
        notifications: NotificationConfig,
        lock: Optional[JumpStartLock] = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
        log_retention_days: int = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        stack = Stack.of(self)
        lock = lock or JumpStartLock.load()
        self.endpoint_name = f"{stack.stack_name[:59]}-sd"
        name_prefix = stack.stack_name[:60]
        training_name, deploy_name = name_prefix + TRAINING_MACHINE_SUFFIX, name_prefix + DEPLOY_MACHINE_SUFFIX

        self.artifacts = JumpStartArtifacts(self, "JumpStart", lock=lock)
        registry = ModelRegistry(self, "Registry", removal_policy=removal_policy)
        self.registry_table = registry.table
        self.state_table = registry.state_table
        self.notifications = Notifications(self, notifications)
        self.topic, self.topic_key = self.notifications.topic, self.notifications.key
        self.roles = SageMakerRoles(
            self,
            "SageMakerRoles",
            bucket=bucket,
            jumpstart_object_arns=self.artifacts.object_arns,
            jumpstart_listing=(self.artifacts.bucket_arn, self.artifacts.listed_prefix),
            endpoint_name=self.endpoint_name,
        )
        functions = PipelineFunctions(self, log_retention=retention(log_retention_days))

        # Intake's dataset functions and training's own tasks, run by the training workflow.
        self.datasets = DatasetTasks(
            functions,
            bucket=bucket,
            training=training,
            hyperparameters=lock.hyperparameters,
            training_script_uri=self.artifacts.script_uri,
        )
        self.judge_environment = self.datasets.judge_environment
        self.snapshot_function = self.datasets.snapshot_function
        self.validate_function = self.datasets.validate_function
        self.training_tasks = TrainingTasks(functions, bucket=bucket, artifacts=self.artifacts)
        self.datasets.grant_bucket(bucket)

        # Serving: the deploy state machine, its endpoint waiters and the endpoint's autoscaling.
        self.serving = Serving(
            functions,
            bucket=bucket,
            registry_table=self.registry_table,
            state_table=self.state_table,
            notifications=self.notifications,
            endpoint_name=self.endpoint_name,
            hosting_role=self.roles.hosting_role,
            artifacts=self.artifacts,
            lock=lock,
            serving=serving,
            deploy_name=deploy_name,
        )
        self.deploy_state_machine = self.serving.deploy_state_machine
        self.inference_success_topic = self.serving.inference_success_topic
        self.inference_error_topic = self.serving.inference_error_topic

        # Training: snapshot -> validation -> fine-tune -> packaging -> the deploy state machine.
        self.training = Training(
            functions,
            registry_table=self.registry_table,
            state_table=self.state_table,
            notifications=self.notifications,
            dataset_functions=(
                self.datasets.snapshot_function,
                self.datasets.validate_function,
                self.datasets.retrain_function,
            ),
            tasks=self.training_tasks,
            roles=self.roles,
            artifacts=self.artifacts,
            lock=lock,
            training=training,
            training_name=training_name,
            deploy_name=deploy_name,
        )
        self.training_state_machine = self.training.training_state_machine
        self.training_state_machine.node.add_dependency(self.deploy_state_machine)
        for machine in (self.training_state_machine, self.deploy_state_machine):
            self.notifications.grant_key(machine.role)

        # Intake's trigger: uploads under datasets/ start the training state machine.
        self.trigger = UploadTrigger(
            functions,
            bucket=bucket,
            state_table=self.state_table,
            training_state_machine=self.training_state_machine,
            training_name=training_name,
            notifications=self.notifications,
            quiet_window_s=training.quiet_window_s,
        )
        self.run_failures = RunFailureReport(
            functions,
            registry_table=self.registry_table,
            notifications=self.notifications,
            training_state_machine=self.training_state_machine,
            deploy_state_machine=self.deploy_state_machine,
        )
        # On `cdk destroy`: the SageMaker resources created at run time.
        self.cleanup = SageMakerCleanup(
            functions,
            registry_table=self.registry_table,
            endpoint_name=self.endpoint_name,
            machines=[(self.training_state_machine, training_name), (self.deploy_state_machine, deploy_name)],
        )
