"""Training pipeline: photos under datasets/<name>/ -> a fine-tuned model live on the endpoint.

S3 "Object Created" (EventBridge) -> upload listener Lambda (quiet-window debounce) -> training
state machine (snapshot, validation, JumpStart fine-tune with `createTrainingJob.sync`) ->
deploy state machine (model, endpoint config, create-or-update endpoint, wait for the endpoint's
state-change event or a bounded poll, registry, SNS).
See docs/pipeline.md for the upload contract and the design.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from aws_cdk import Acknowledgment, ArnFormat, Aws, CustomResource, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.config import STACK_TAG_KEY, ConfigError, NotificationConfig, ServingConfig, TrainingConfig
from stacks.shared import sfn_budget
from stacks.contract import (
    DATASETS_PREFIX,
    INFERENCE_FAILURES_PREFIX,
    INFERENCE_OUTPUTS_PREFIX,
    METRICS_NAMESPACE,
    MODELS_PREFIX,
    PIPELINE_SERVICE,
    STAGING_PREFIX,
    PipelineEnv,
)
from stacks.serving.workflow import AsyncOutput, DeployWorkflow, HistoryBudget
from stacks.training.jumpstart_lock import JumpStartArtifacts, JumpStartLock
from stacks.registry.construct import (
    STATUS_DEPLOYING,
    STATUS_FAILED,
    STATUS_TRAINING,
    STATUS_VALIDATING,
    ModelRegistry,
)
from stacks.monitoring.construct import retention
from stacks.shared.nag import acknowledge, acknowledge_prefix_grants, arn_prefix
from stacks.shared.powertools_layer import powertools_layer
from stacks.shared.runtime import runtime_code
from stacks.training.roles import SageMakerRoles
from stacks.training.workflow import TrainingWorkflow

AUTOSCALING_SLR_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
_COLON_ARN = ArnFormat.COLON_RESOURCE_NAME


STATE_MACHINE_LOG_PREFIX = "/aws/vendedlogs/states/"
"""Where Step Functions log groups belong (AWS's recommendation for vended logs)."""

class TrainingPipeline(Construct):
    """Everything between an upload and a live model.

    Props:
      bucket: the data bucket (datasets/ read, models/ written).
      training / serving / notifications: typed settings (see stacks/config.py for defaults).
      lock: the JumpStart lock (default: stacks/training/jumpstart.lock.json).
      removal_policy: for the registry tables (default DESTROY; the bucket is never touched).
      log_retention_days: retention of every log group created here (default 30; a CloudWatch value).

    Attributes:
      registry_table (model registry, see model_registry.py), state_table (bookkeeping), topic,
      training_state_machine, deploy_state_machine (input {"modelId": ...}),
      endpoint_name (created at run time, `<stack name>-sd`), upload_rule, upload_function,
      snapshot_function, validate_function, retrain_function (a retrain's inputs from the staged
      snapshot), explain_function (training failures in one line, retryable or not), park_function / endpoint_event_function /
      endpoint_rule (the endpoint state-change wake-up), scaling_function (autoscaling after InService:
      scale to zero after idleMinutes, and from zero), inference_success_topic / inference_error_topic
      (SageMaker's asynchronous inference notices), cleanup (custom resource),
      roles (SageMakerRoles), artifacts (JumpStart lock values by region), topic_key (the
      topic's customer-managed KMS key: CloudWatch alarms cannot publish with the AWS-managed one).
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
        self._log_retention = retention(log_retention_days)
        lock = lock or JumpStartLock.load()
        self.endpoint_name = f"{stack.stack_name[:59]}-sd"
        name_prefix = stack.stack_name[:60]

        self.artifacts = JumpStartArtifacts(self, "JumpStart", lock=lock)
        registry = ModelRegistry(self, "Registry", removal_policy=removal_policy)
        self.registry_table = registry.table
        self.state_table = registry.state_table
        self.topic = self._topic(notifications)
        self.roles = SageMakerRoles(self, "SageMakerRoles", bucket=bucket,
                                    jumpstart_object_arns=self.artifacts.object_arns,
                                    jumpstart_listing=(self.artifacts.bucket_arn, self.artifacts.listed_prefix),
                                    endpoint_name=self.endpoint_name)

        self._layer = powertools_layer(self, "Powertools")
        dataset_environment = {
            PipelineEnv.BUCKET_NAME: bucket.bucket_name,
            PipelineEnv.DEFAULT_INSTANCE_PROMPT: training.default_instance_prompt,
            PipelineEnv.DEFAULT_CLASS_PROMPT: training.default_class_prompt,
            PipelineEnv.DEFAULT_HYPERPARAMETERS: json.dumps(lock.hyperparameters, sort_keys=True),
            PipelineEnv.TRAINING_INSTANCE_TYPE: training.instance_type,
            PipelineEnv.TRAINING_SCRIPT_URI: self.artifacts.script_uri,
            PipelineEnv.MIN_IMAGES: str(training.min_images),
            PipelineEnv.MAX_IMAGES: str(training.max_images),
            PipelineEnv.MAX_IMAGE_BYTES: str(training.max_image_mb * 1024 * 1024),
        }
        # How datasets are judged (dataset_rules.JudgeSettings reads these): the API's dataset commit
        # judges staged photos with the same settings.
        self.judge_environment = {k: v for k, v in dataset_environment.items()
                                  if k not in (PipelineEnv.BUCKET_NAME, PipelineEnv.TRAINING_SCRIPT_URI)}
        self.snapshot_function = self._function("Snapshot", "intake", "dataset_tasks.snapshot", dataset_environment,
                                                timeout_s=60, description="Lists a dataset and names its snapshot")
        self.validate_function = self._function("Validate", "intake", "dataset_tasks.validate", dataset_environment,
                                                timeout_s=300, memory_mb=512,
                                                description="Judges a dataset snapshot and stages it for training")
        self.retrain_function = self._function(
            "PrepareRetrain", "intake", "dataset_tasks.prepare_retrain", dataset_environment, timeout_s=60,
            description="Rebuilds a failed model's training inputs from its staged snapshot for a retrain")
        self.explain_function = self._function(
            "ExplainFailure", "training", "training_failure.handler", {}, timeout_s=30,
            description="Turns a training failure into one line and says whether a retrain can help")
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
        # After training: JumpStart's inference code into <output>/code/ when the output lacks it.
        self.package_function = self._function(
            "PackageModel", "training", "model_tasks.package", {PipelineEnv.INFERENCE_SCRIPT_URI: self.artifacts.inference_script_uri},
            timeout_s=300, memory_mb=512, description="Adds JumpStart's inference code to a trained model's output")
        bucket.grant_read(self.package_function, f"{MODELS_PREFIX}*")
        bucket.grant_put(self.package_function, f"{MODELS_PREFIX}*")
        self.package_function.add_to_role_policy(iam.PolicyStatement(
            actions=["s3:GetObject"], resources=[self.artifacts.inference_script_arn]))
        acknowledge_prefix_grants(self.package_function.role, bucket, MODELS_PREFIX, writes=True)
        acknowledge_prefix_grants(self.validate_function.role, bucket, DATASETS_PREFIX, STAGING_PREFIX, MODELS_PREFIX,
                                  writes=True)

        # ---- deploy state machine ----
        deploy_name = f"{name_prefix}-deploy"
        deploy_arn = stack.format_arn(service="states", resource="stateMachine", resource_name=deploy_name,
                                      arn_format=_COLON_ARN)
        waiter_environment = {PipelineEnv.STATE_TABLE_NAME: self.state_table.table_name}
        self.park_function = self._function("EndpointWaitPark", "serving", "endpoint_waiter.park", waiter_environment,
                                            timeout_s=30, description="Parks a deployment's wait for its endpoint")
        self.endpoint_event_function = self._function(
            "EndpointStateChange", "serving", "endpoint_waiter.on_state_change", waiter_environment, timeout_s=30,
            description="Wakes the deployment waiting for the endpoint when SageMaker reports a state change")
        self.state_table.grant(self.park_function, "dynamodb:PutItem")
        self.state_table.grant(self.endpoint_event_function, "dynamodb:GetItem")
        self.park_function.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:DescribeEndpoint"],
            resources=[stack.format_arn(service="sagemaker", resource="endpoint",
                                        resource_name=self.endpoint_name.lower())]))
        for waiter in (self.park_function, self.endpoint_event_function):
            waiter.add_to_role_policy(iam.PolicyStatement(actions=["states:SendTaskSuccess"], resources=[deploy_arn]))
        self.endpoint_rule = events.Rule(
            self, "EndpointStateChanged",
            description="SageMaker state changes of the pipeline's endpoint",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Endpoint State Change"],
                detail={"EndpointName": [self.endpoint_name]},
            ),
        )
        self.endpoint_rule.add_target(targets.LambdaFunction(self.endpoint_event_function, retry_attempts=4,
                                                             max_event_age=Duration.hours(1)))
        max_polls = max_polls_for(serving)
        self.scaling_function = self._function(
            "EndpointAutoscaling", "serving", "autoscaling_task.handler",
            {PipelineEnv.MAX_INSTANCES: str(serving.max_instances),
             PipelineEnv.TARGET_BACKLOG_PER_INSTANCE: str(serving.target_backlog_per_instance),
             PipelineEnv.IDLE_MINUTES: str(serving.idle_minutes)},
            timeout_s=60, description="Registers (or removes) the endpoint variant's autoscaling and its alarms")
        self._grant_autoscaling(self.scaling_function, register=True)
        # SageMaker publishes asynchronous inference results with the hosting role.
        self.inference_success_topic = self._inference_topic("InferenceSucceeded", "succeeded")
        self.inference_error_topic = self._inference_topic("InferenceFailed", "failed")
        async_output = AsyncOutput(
            output_uri=bucket.s3_url_for_object(INFERENCE_OUTPUTS_PREFIX.rstrip("/")),
            failure_uri=bucket.s3_url_for_object(INFERENCE_FAILURES_PREFIX.rstrip("/")),
            success_topic=self.inference_success_topic, error_topic=self.inference_error_topic,
        )
        deploy = DeployWorkflow(
            self, "Deploy",
            registry_table=self.registry_table, state_table=self.state_table, topic=self.topic,
            endpoint_name=self.endpoint_name, hosting_role=self.roles.hosting_role,
            inference_image=self.artifacts.inference_image, inference_environment=lock.inference_environment,
            instance_type=serving.instance_type,
            poll_interval_s=serving.endpoint_poll_s, max_polls=max_polls,
            lock_owner_arn_pattern=stack.format_arn(
                service="states", resource="execution", resource_name=f"{deploy_name}:*",
                arn_format=_COLON_ARN),
            park_function=self.park_function,
            scaling_function=self.scaling_function,
            async_output=async_output,
        )
        self.deploy_state_machine = self._state_machine("DeployStateMachine", deploy.definition, deploy_name)
        check_history_budget(deploy, serving)
        deploy.grant_create_model(self.deploy_state_machine.role)
        deploy.restrict_to_own_resources(self.deploy_state_machine.role)
        sagemaker_arn = arn_prefix(self, "sagemaker")
        acknowledge(
            self.deploy_state_machine.role,
            "CreateModel (granted in DeployWorkflow.grant_create_model) and CDK's CreateEndpointConfig task act "
            "on models and endpoint configs named per model version at run time.",
            f"AwsSolutions-IAM5[Resource::{sagemaker_arn}endpoint-config/*]",
            f"AwsSolutions-IAM5[Resource::{sagemaker_arn}model/*]",
        )
        acknowledge(
            self.deploy_state_machine.role,
            "DescribeExecution on this state machine's own executions: a waiting deployment checks "
            "whether the lock holder still runs.",
            f"AwsSolutions-IAM5[Resource::{arn_prefix(self, 'states')}execution:{deploy_name}:*]",
        )
        acknowledge(
            self.deploy_state_machine.role,
            "CDK's LambdaInvoke task grants the function and its versions (`<arn>:*`).",
            *(f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(fn.node.default_child)}.Arn>:*]"
              for fn in (self.park_function, self.scaling_function)),
        )

        # ---- training state machine ----
        workflow = TrainingWorkflow(
            self, "Training",
            registry_table=self.registry_table, state_table=self.state_table, topic=self.topic,
            snapshot_function=self.snapshot_function, validate_function=self.validate_function,
            retrain_function=self.retrain_function, explain_function=self.explain_function,
            package_function=self.package_function, training_role=self.roles.training_role,
            training_image=self.artifacts.training_image, base_model_uri=self.artifacts.base_model_uri,
            metric_definitions=lock.metric_definitions, instance_type=training.instance_type,
            max_runtime_s=training.max_runtime_minutes * 60,
            spot_max_wait_s=training.spot_max_wait_minutes * 60 if training.spot else None,
            metrics_namespace=METRICS_NAMESPACE,
            quiet_window_s=training.quiet_window_s,
            # Imported by name so that the grant reads `execution:<name>*` rather than a split ARN.
            deploy_state_machine=sfn.StateMachine.from_state_machine_name(self, "DeployByName", deploy_name),
        )
        self.training_state_machine = self._state_machine(
            "TrainingStateMachine", workflow.definition, f"{name_prefix}-train"
        )
        workflow.grant_training(self.training_state_machine.role)
        self.training_state_machine.node.add_dependency(self.deploy_state_machine)
        acknowledge(
            self.training_state_machine.role,
            "Training jobs are named per model version at run time.",
            f"AwsSolutions-IAM5[Resource::{sagemaker_arn}training-job/*]",
        )
        acknowledge(
            self.training_state_machine.role,
            "The deploy state machine's executions are named per model at run time (startExecution.sync "
            "describes and stops them).",
            f"AwsSolutions-IAM5[Resource::{arn_prefix(self, 'states')}execution:{deploy_name}*]",
        )
        acknowledge(
            self.training_state_machine.role,
            "CDK's LambdaInvoke task grants the function and its versions (`<arn>:*`).",
            *(f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(fn.node.default_child)}.Arn>:*]"
              for fn in (self.snapshot_function, self.validate_function, self.retrain_function,
                         self.explain_function, self.package_function)),
        )
        for machine in (self.training_state_machine, self.deploy_state_machine):
            self._grant_topic_key(machine.role)

        # ---- trigger ----
        self.upload_function = self._function(
            "UploadListener", "intake", "upload_listener.handler",
            {PipelineEnv.STATE_TABLE_NAME: self.state_table.table_name,
             PipelineEnv.TRAINING_STATE_MACHINE_ARN: self.training_state_machine.state_machine_arn,
             PipelineEnv.TOPIC_ARN: self.topic.topic_arn,
             PipelineEnv.QUIET_WINDOW_S: str(training.quiet_window_s)},
            timeout_s=30, description="Debounces dataset uploads into one training per snapshot",
        )
        self.state_table.grant(self.upload_function, "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:PutItem")
        self.training_state_machine.grant_start_execution(self.upload_function)
        train_executions = stack.format_arn(service="states", resource="execution",
                                            resource_name=f"{name_prefix}-train:*", arn_format=_COLON_ARN)
        self.upload_function.add_to_role_policy(
            iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[train_executions]))
        acknowledge(
            self.upload_function.role,
            "Executions are named per dataset and generation at run time; the listener checks whether "
            "its dataset's execution still runs.",
            f"AwsSolutions-IAM5[Resource::{arn_prefix(self, 'states')}execution:{name_prefix}-train:*]",
        )
        # The topic's key is customer-managed (see _topic): every publisher needs its kms permissions.
        self.upload_function.add_to_role_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn]))
        self._grant_topic_key(self.upload_function.role)
        self.upload_rule = events.Rule(
            self, "DatasetUploaded",
            description="Files arriving under datasets/ in the data bucket",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [bucket.bucket_name]},
                        "object": {"key": [{"prefix": DATASETS_PREFIX}]}},
            ),
        )
        self.upload_rule.add_target(targets.LambdaFunction(self.upload_function, retry_attempts=8,
                                                           max_event_age=Duration.hours(2)))

        self.run_failure_function, self.run_failure_rule = self._run_failures(deploy_name, name_prefix)

        # ---- cleanup on `cdk destroy` ----
        self.cleanup = self._cleanup([(self.training_state_machine, f"{name_prefix}-train"),
                                      (self.deploy_state_machine, deploy_name)])

    def _run_failures(self, deploy_name: str, name_prefix: str) -> tuple[lambda_.Function, events.Rule]:
        """An execution that ends uncaught (States.DataLimitExceeded, States.Runtime, the history
        limit, a timeout) gets its model marked failed and a notification (run_failures.py)."""
        machines = (self.training_state_machine, self.deploy_state_machine)
        function = self._function(
            "RunFailures", "monitoring", "run_failure_tasks.handler",
            {PipelineEnv.REGISTRY_TABLE_NAME: self.registry_table.table_name, PipelineEnv.TOPIC_ARN: self.topic.topic_arn,
             PipelineEnv.TRAINING_STATE_MACHINE_ARN: self.training_state_machine.state_machine_arn,
             PipelineEnv.DEPLOY_STATE_MACHINE_ARN: self.deploy_state_machine.state_machine_arn,
             PipelineEnv.TRAINING_STATUSES: f"{STATUS_VALIDATING},{STATUS_TRAINING}", PipelineEnv.DEPLOY_STATUSES: STATUS_DEPLOYING,
             PipelineEnv.FAILED_STATUS: STATUS_FAILED},
            timeout_s=60, description="Reports pipeline executions that ended without recording why")
        self.registry_table.grant(function, "dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem")
        function.add_to_role_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn]))
        self._grant_topic_key(function.role)
        rule = events.Rule(
            self, "RunEndedUncaught",
            description="Pipeline executions that failed or timed out",
            event_pattern=events.EventPattern(
                source=["aws.states"], detail_type=["Step Functions Execution Status Change"],
                detail={"status": ["FAILED", "TIMED_OUT"],
                        "stateMachineArn": [m.state_machine_arn for m in machines]}),
        )
        rule.add_target(targets.LambdaFunction(function, retry_attempts=8, max_event_age=Duration.hours(2)))
        return function, rule

    # ---- autoscaling ----

    def _endpoint_arns(self) -> tuple[str, str]:
        stack = Stack.of(self)
        return (stack.format_arn(service="sagemaker", resource="endpoint", resource_name=self.endpoint_name.lower()),
                stack.format_arn(service="sagemaker", resource="endpoint-config", resource_name="*"))

    def _grant_autoscaling(self, function: lambda_.Function, *, register: bool) -> None:
        """Application Auto Scaling on the endpoint's variant, and its alarms (register, or only deregister)."""
        stack = Stack.of(self)
        endpoint_arn, config_arns = self._endpoint_arns()
        actions = ["application-autoscaling:DeregisterScalableTarget"]
        if register:
            actions += ["application-autoscaling:DescribeScalableTargets",
                        "application-autoscaling:DescribeScalingPolicies",
                        "application-autoscaling:DeleteScalingPolicy",
                        "application-autoscaling:RegisterScalableTarget", "application-autoscaling:PutScalingPolicy"]
        # Scalable targets get a generated id in their ARN, unknown before registration.
        function.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=["*"]))
        alarms = [stack.format_arn(service="cloudwatch", resource="alarm", resource_name=name, arn_format=_COLON_ARN)
                  for name in (f"TargetTracking-endpoint/{self.endpoint_name}/*", f"{self.endpoint_name}-*")]
        # Deregistering deletes the target's policies and their alarms with the caller's permissions;
        # the step policies' two alarms (scale out from zero, scale in when idle) are ours to delete.
        alarm_actions = ["cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"]
        findings = [f"AwsSolutions-IAM5[Resource::{arn_prefix(self, 'cloudwatch')}alarm:TargetTracking-endpoint/"
                    f"{self.endpoint_name}/*]",
                    f"AwsSolutions-IAM5[Resource::{arn_prefix(self, 'cloudwatch')}alarm:{self.endpoint_name}-*]"]
        reason = ("The target-tracking alarms are named by Application Auto Scaling under this endpoint's prefix, "
                  "the step policies' alarms `<endpoint>-scale-out-from-zero` / `-scale-in-when-idle` by this stack")
        if register:
            # What Application Auto Scaling checks and does with the caller's permissions when it
            # registers a SageMaker variant and puts its target-tracking alarms.
            function.add_to_role_policy(iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig",
                         "sagemaker:UpdateEndpointWeightsAndCapacities"],
                resources=[endpoint_arn, config_arns]))
            alarm_actions.insert(0, "cloudwatch:PutMetricAlarm")
            findings.append(f"AwsSolutions-IAM5[Resource::{arn_prefix(self, 'sagemaker')}endpoint-config/*]")
            reason += "; endpoint configs are named per model version at run time"
            # The service-linked role Application Auto Scaling uses for SageMaker variants, created
            # on first registration; nothing else may be created.
            function.add_to_role_policy(iam.PolicyStatement(
                actions=["iam:CreateServiceLinkedRole"],
                resources=[f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/aws-service-role/"
                           f"{AUTOSCALING_SLR_SERVICE}/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"],
                conditions={"StringLike": {"iam:AWSServiceName": AUTOSCALING_SLR_SERVICE}}))
        function.add_to_role_policy(iam.PolicyStatement(actions=alarm_actions, resources=alarms))
        acknowledge(function.role, reason + ".", *findings)
        # The role's one Resource::* acknowledgment (it replaces _function's X-Ray one): every action on *.
        acknowledge(
            function.role,
            "On *: " + ", ".join(actions) + " (Application Auto Scaling names scalable targets with generated "
            "ids: no resource-level permission is possible before registration); xray:PutTraceSegments, "
            "xray:PutTelemetryRecords (X-Ray tracing supports no resource-level permissions).",
            "AwsSolutions-IAM5[Resource::*]",
        )

    # ---- building blocks ----

    def _topic(self, notifications: NotificationConfig) -> sns.Topic:
        # A customer-managed key, not alias/aws/sns: the AWS-managed key's policy cannot be changed
        # and does not let CloudWatch alarms use it, so alarms could never publish to the topic.
        self.topic_key = kms.Key(
            self, "NotificationsKey", enable_key_rotation=True, removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
            description="Encrypts the DreamBooth pipeline's notifications topic",
        )
        topic = sns.Topic(
            self, "Notifications",
            display_name="DreamBooth pipeline",
            enforce_ssl=True,
            master_key=self.topic_key,
        )
        if notifications.email:
            topic.add_subscription(subscriptions.EmailSubscription(notifications.email))
        return topic

    def _inference_topic(self, construct_id: str, outcome: str) -> sns.Topic:
        topic = sns.Topic(self, construct_id, display_name=f"DreamBooth generations {outcome}", enforce_ssl=True,
                          master_key=self.topic_key)
        # Not grant_publish: it adds kms:GenerateDataKey* on the key; the exact two actions are granted below.
        self.roles.hosting_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]))
        self._grant_topic_key(self.roles.hosting_role)
        return topic

    def _grant_topic_key(self, role: Optional[iam.IRole]) -> None:
        """What a publisher needs on the topic's key (SNS encrypts with a data key made for it)."""
        assert role is not None
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[self.topic_key.key_arn]))

    def _function(self, construct_id: str, runtime: str, handler: str, environment: dict[str, str], *, timeout_s: int,
                  description: str, memory_mb: int = 256) -> lambda_.Function:
        log_group = logs.LogGroup(self, f"{construct_id}Logs", retention=self._log_retention,
                                  removal_policy=RemovalPolicy.DESTROY)
        role = iam.Role(self, f"{construct_id}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description=description)
        function = lambda_.Function(
            self, construct_id,
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.X86_64,
            handler=handler,
            code=runtime_code(runtime),
            layers=[self._layer],
            environment={**environment, "POWERTOOLS_SERVICE_NAME": PIPELINE_SERVICE,
                         "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE},
            timeout=Duration.seconds(timeout_s),
            memory_size=memory_mb,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            role=role,
            description=description,
        )
        log_group.grant_write(role)
        _ignore_implied_dependency(function)
        Validations.of(function).acknowledge(
            Acknowledgment(
                id="AwsSolutions-L1",
                reason=(
                    "Pinned to python3.13: AWS publishes the Powertools layer this function uses for "
                    "python3.12 and python3.13 only."
                ),
            ),
        )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray tracing (PutTraceSegments, PutTelemetryRecords) supports no resource-level permissions.",
            ),
        )
        return function

    def _state_machine(self, construct_id: str, definition: sfn.IChainable, name: str) -> sfn.StateMachine:
        # Under /aws/vendedlogs/: CloudWatch Logs' resource policy for vended (service-delivered)
        # logs has a 5,120-character limit that per-group entries outside this prefix exhaust.
        log_group = logs.LogGroup(self, f"{construct_id}Logs", retention=self._log_retention,
                                  log_group_name=f"{STATE_MACHINE_LOG_PREFIX}{name}",
                                  removal_policy=RemovalPolicy.DESTROY)
        machine = sfn.StateMachine(
            self, construct_id,
            state_machine_name=name,  # the deploy lock tells live lock holders by this name
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        _ignore_implied_dependency(machine)
        acknowledge(
            machine.role,
            "X-Ray tracing, sagemaker:ListTags and cloudwatch:PutMetricData (held to the pipeline's namespace by "
            "a condition) support no resource-level permissions.",
            "AwsSolutions-IAM5[Resource::*]",
        )
        return machine

    def _cleanup(self, machines: list[tuple[sfn.StateMachine, str]]) -> CustomResource:
        function = self._function("Cleanup", "cleanup", "cleanup.handler", {}, timeout_s=300,
                                  description="On stack deletion, deletes the pipeline's SageMaker endpoint, configs and models")
        stack = Stack.of(self)
        function.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:DeleteEndpoint"],
            resources=[stack.format_arn(service="sagemaker", resource="endpoint",
                                        resource_name=self.endpoint_name.lower())],
        ))
        # Configs and models are named per model version: only the ones this stack tagged.
        function.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel"],
            resources=[
                stack.format_arn(service="sagemaker", resource="endpoint-config", resource_name="*"),
                stack.format_arn(service="sagemaker", resource="model", resource_name="*"),
            ],
            conditions={"StringEquals": {f"aws:ResourceTag/{STACK_TAG_KEY}": stack.stack_name}},
        ))
        for machine, name in machines:
            function.add_to_role_policy(iam.PolicyStatement(
                actions=["states:ListExecutions"], resources=[machine.state_machine_arn]))
            function.add_to_role_policy(iam.PolicyStatement(
                actions=["states:StopExecution"],
                resources=[stack.format_arn(service="states", resource="execution",
                                            resource_name=f"{name}:*", arn_format=_COLON_ARN)],
            ))
            acknowledge(function.role, "Executions are named at run time; only this state machine's are stopped.",
                        f"AwsSolutions-IAM5[Resource::{arn_prefix(self, 'states')}execution:{name}:*]")
        self.registry_table.grant(function, "dynamodb:Scan")
        self._grant_autoscaling(function, register=False)  # deregisters the endpoint's scalable target
        resource = CustomResource(
            self, "SageMakerCleanup",
            service_token=function.function_arn,
            resource_type="Custom::DreamBoothSageMakerCleanup",
            properties={
                "RegistryTableName": self.registry_table.table_name,
                "EndpointName": self.endpoint_name,
                "StateMachineArns": [machine.state_machine_arn for machine, _ in machines],
            },
        )
        # Its references (table, state machines, function) make `cdk destroy` delete it first,
        # while they all still exist.
        sagemaker_arn = arn_prefix(self, "sagemaker")
        acknowledge(
            function.role,
            "Endpoint configs and models are named per model version at run time; the function "
            "deletes only the names recorded in the registry.",
            f"AwsSolutions-IAM5[Resource::{sagemaker_arn}endpoint-config/*]",
            f"AwsSolutions-IAM5[Resource::{sagemaker_arn}model/*]",
        )
        return resource



def max_polls_for(serving: ServingConfig, poll_s: Optional[int] = None, max_wait_minutes: Optional[int] = None) -> int:
    """DescribeEndpoint checks a deployment may make before it reports the endpoint too slow."""
    poll_s = poll_s or serving.endpoint_poll_s
    return max(1, (max_wait_minutes or serving.endpoint_max_wait_minutes) * 60 // poll_s)


def check_history_budget(deploy: DeployWorkflow, serving: ServingConfig) -> HistoryBudget:
    """Refuse endpoint settings whose longest deployment would pass 25,000 history events."""
    budget = HistoryBudget.of(sfn_budget.graph_of(deploy.definition))
    events = budget.total(max_polls_for(serving))
    if sfn_budget.fits(events):
        return budget
    poll, wait = serving.endpoint_poll_s, serving.endpoint_max_wait_minutes
    least_poll = next((p for p in range(poll, 301) if sfn_budget.fits(budget.total(max_polls_for(serving, p)))), None)
    most_wait = next((m for m in range(wait, 4, -1)
                      if sfn_budget.fits(budget.total(max_polls_for(serving, max_wait_minutes=m)))), None)
    options = [f"endpointPollSeconds of at least {least_poll}" if least_poll else "",
               f"endpointMaxWaitMinutes of at most {most_wait}" if most_wait else ""]
    raise ConfigError(
        "endpointPollSeconds", poll,
        f"with endpointMaxWaitMinutes={wait} a deployment may check the endpoint {max_polls_for(serving)} times "
        f"(and wait as often for a busy one), writing up to {events} Step Functions history events "
        f"({budget.poll_turn} per check, {budget.busy_turn} per busy wait, {budget.lock_turn} per lock check); an "
        f"execution may write {sfn_budget.HISTORY_EVENT_LIMIT} (less {sfn_budget.HISTORY_EVENT_RESERVE} kept for "
        "retries). Use " + " or ".join(o for o in options if o))


def _ignore_implied_dependency(construct: Construct) -> None:
    # CDK adds an explicit DependsOn on the role next to the GetAtt it already makes (so the role's
    # policy exists before first use); cfn-lint W3005 flags the repetition. Silenced for this
    # resource only: the DependsOn is generated, and harmless.
    construct.node.default_child.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
