"""A test stack holding InferenceApi with stand-ins for what the training pipeline provides
(a registry Table with the contract's key and a minimal deployment StateMachine)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import AwsSolutionsChecks

from stacks.api.construct import InferenceApi
from stacks.config import ApiConfig, ServingConfig, StorageConfig
from stacks.storage.construct import DataBucket

ENDPOINT_NAME = "ApiTestStack-sd"


class ApiTestStack(cdk.Stack):
    def __init__(
        self, scope, construct_id: str, *, config: ApiConfig, existing_bucket: Optional[str] = None, **kwargs: Any
    ):
        super().__init__(scope, construct_id, **kwargs)
        self.data = DataBucket(self, "Data", config=StorageConfig(), existing_bucket_name=existing_bucket)
        registry = dynamodb.Table(
            self,
            "Registry",
            partition_key=dynamodb.Attribute(name="modelId", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        deploy, training = (self._stand_in(name) for name in ("Deploy", "Training"))
        # Stand-ins for the pipeline's asynchronous inference topics (encrypted there with its key).
        topics = [sns.Topic(self, name, enforce_ssl=True, master_key=self._key()) for name in ("Succeeded", "Failed")]
        self.api = InferenceApi(
            self,
            "Api",
            bucket=self.data.bucket,
            registry_table=registry,
            deploy_state_machine=deploy,
            training_state_machine=training,
            endpoint_name=ENDPOINT_NAME,
            config=config,
            serving=ServingConfig(),
            success_topic=topics[0],
            error_topic=topics[1],
        )

    def _stand_in(self, name: str) -> sfn.StateMachine:
        machine = sfn.StateMachine(
            self,
            name,
            definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(self, f"{name}StandIn")),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=logs.LogGroup(self, f"{name}Logs", removal_policy=cdk.RemovalPolicy.DESTROY),
                level=sfn.LogLevel.ALL,
            ),
        )
        # cfn-lint W3005 on CDK's DependsOn next to the role GetAtt, in this stand-in only.
        machine.node.default_child.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
        cdk.Validations.of(machine).acknowledge(
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason=f"Test stand-in for the pipeline's {name.lower()} state machine: X-Ray and log delivery need *.",
            )
        )
        return machine

    def _key(self):
        from aws_cdk import aws_kms as kms

        if not hasattr(self, "_topic_key"):
            self._topic_key = kms.Key(
                self, "TopicKey", enable_key_rotation=True, removal_policy=cdk.RemovalPolicy.DESTROY
            )
        return self._topic_key


def build(
    config: ApiConfig = ApiConfig(),  # noqa: B008 (a frozen dataclass: one shared default is right)
    outdir: Optional[str] = None,
    existing_bucket: Optional[str] = None,
    context: Optional[Mapping[str, Any]] = None,
) -> tuple[cdk.App, ApiTestStack]:
    import json

    from tests.conftest import ROOT

    cdk_context = json.loads((ROOT / "cdk.json").read_text())["context"]
    app = cdk.App(outdir=outdir, context={**cdk_context, **(context or {})})
    stack = ApiTestStack(
        app,
        "ApiTestStack",
        config=config,
        existing_bucket=existing_bucket,
        env=cdk.Environment(account="123456789012", region="us-east-1"),
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack
