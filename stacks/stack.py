"""The one stack: data bucket, training pipeline and HTTPS API, wired together here."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from dreambooth_shared.contract import VARIANT_NAME
from stacks import outputs
from stacks.api.construct import InferenceApi
from stacks.config import AppConfig
from stacks.monitoring.construct import ApiMetricsSource, Monitoring
from stacks.pipeline import TrainingPipeline
from stacks.shared.logs import manage_function_logs
from stacks.storage.construct import DataBucket


class DreamBoothStack(Stack):
    """Composes the constructs; each construct does one architectural task.

    Props:
      config: the whole typed configuration (`AppConfig.load`). Its `existing_bucket_name` is
        the bucket taken over instead of created: `bucketName`, or the deploy-time quota choice.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config

        self.data = DataBucket(self, "Data", config=config.storage, existing_bucket_name=config.existing_bucket_name)
        # Uploads under datasets/ -> validated JumpStart fine-tune -> model live on the endpoint.
        self.pipeline = TrainingPipeline(
            self,
            "Pipeline",
            bucket=self.data.bucket,
            training=config.training,
            serving=config.serving,
            notifications=config.notifications,
            log_retention_days=config.monitoring.log_retention_days,
        )
        # The HTTPS API serves what the pipeline registers and deploys.
        self.api = InferenceApi(
            self,
            "Api",
            bucket=self.data.bucket,
            registry_table=self.pipeline.registry_table,
            deploy_state_machine=self.pipeline.deploy_state_machine,
            training_state_machine=self.pipeline.training_state_machine,
            endpoint_name=self.pipeline.endpoint_name,
            config=config.api,
            serving=config.serving,
            success_topic=self.pipeline.inference_success_topic,
            error_topic=self.pipeline.inference_error_topic,
            log_retention_days=config.monitoring.log_retention_days,
            judge_environment=self.pipeline.judge_environment,
            scaling_function=self.pipeline.serving.scaling_function,
        )
        # `cdk destroy`: the cleanup disables the dispatcher's rules before it deletes the endpoint.
        self.pipeline.cleanup.stop_first(self.api.dispatch_rules)
        # The web page uploads a dataset's photos straight to the bucket (presigned POSTs): a bucket the
        # stack owns lets the page's origin (the API's host) do that; a reused bucket is never
        # reconfigured (README: training from the browser needs that CORS rule added by hand).
        self.data.allow_browser_uploads(self.api.page_origin)
        # Dashboard and alarms (to the pipeline's notifications topic) over all of the above.
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            topic=self.pipeline.topic,
            topic_key=self.pipeline.topic_key,
            training_state_machine=self.pipeline.training_state_machine,
            deploy_state_machine=self.pipeline.deploy_state_machine,
            endpoint_name=self.pipeline.endpoint_name,
            variant_name=VARIANT_NAME,
            api=ApiMetricsSource(stage=self.api.api.deployment_stage, failed_notices=self.api.failed_notices),
            config=config.monitoring,
        )
        # A reused bucket encrypted with a customer key: its key to each role that reads or writes its
        # objects, after every grant above.
        self.data.grant_key_to_object_users(self)
        # Last: CDK's own functions (S3 notifications handler) get a log group with retention too.
        manage_function_logs(self, config.monitoring.log_retention_days)

        CfnOutput(
            self,
            outputs.BUCKET_NAME,
            value=self.data.bucket.bucket_name,
            description="Upload datasets under datasets/<name>/ in this bucket.",
        )
        CfnOutput(
            self,
            outputs.BUCKET_CREATED_BY_STACK,
            value=str(self.data.created).lower(),
            description="false when an existing bucket was reused (it is never modified beyond EventBridge).",
        )
        self._stable_output_ids()

    # Output name (stacks/outputs.py) -> (construct, its output child). The CLI reads these names with
    # DescribeStacks and the README documents them; without the override they would carry a hash of the
    # construct path (e.g. MonitoringDashboardName6820B8A6).
    def _stable_output_ids(self) -> None:
        children = {
            outputs.API_URL: (self.api, "Url"),
            outputs.API_KEY_ID: (self.api, "ApiKeyId"),
            outputs.INVOKE_POLICY_ARN: (self.api, "InvokePolicyArn"),
            outputs.DASHBOARD_NAME: (self.monitoring, "DashboardName"),
        }
        for logical_id, (construct, child_id) in children.items():
            output = construct.node.try_find_child(child_id)
            if isinstance(output, CfnOutput):
                output.override_logical_id(logical_id)
