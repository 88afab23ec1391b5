"""One small factory for the pipeline's Lambda functions and state machines (every unit builds with it).

Each function: its own role and log group (with retention), the Powertools layer, the pinned AWS
SDK's layer (stacks/shared/sdk_layer.py), X-Ray tracing, its capability's folder lambda/<capability>/ as code,
with the shared package (stacks/shared/assets.py). Each state machine: logs at level ALL under
/aws/vendedlogs/states/, tracing on.
"""

from __future__ import annotations

from typing import Optional

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from dreambooth_shared.contract import METRICS_NAMESPACE, PIPELINE_SERVICE
from stacks.shared.assets import lambda_code
from stacks.shared.nag import acknowledge
from stacks.shared.powertools_layer import powertools_layer
from stacks.shared.sdk_layer import sdk_layer

STATE_MACHINE_LOG_PREFIX = "/aws/vendedlogs/states/"
"""Where Step Functions log groups belong (AWS's recommendation for vended logs)."""


class PipelineFunctions:
    """Builds functions and state machines as children of `scope` (their construct ids are the
    ones given, so moving a unit between files keeps its resources' logical ids).

    Props:
      scope: the construct the resources are created in.
      log_retention: retention of every log group created here.
    """

    def __init__(self, scope: Construct, *, log_retention: logs.RetentionDays) -> None:
        self.scope = scope
        self.log_retention = log_retention
        self.layer = powertools_layer(scope, "Powertools")
        self.sdk_layer = sdk_layer(scope)

    def function(
        self,
        construct_id: str,
        runtime: str,
        handler: str,
        environment: dict[str, str],
        *,
        timeout_s: int,
        description: str,
        memory_mb: int = 256,
        service: str = PIPELINE_SERVICE,
        dead_letter_queue: Optional[sqs.IQueue] = None,
    ) -> lambda_.Function:
        """A function running lambda/<runtime>'s `handler`, its Powertools service `service`."""
        scope = self.scope
        log_group = logs.LogGroup(
            scope, f"{construct_id}Logs", retention=self.log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        # An own role instead of the default one, which carries the AWSLambdaBasicExecutionRole
        # managed policy: this one may write to its own log group only.
        role = iam.Role(
            scope,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=description,
        )
        function = lambda_.Function(
            scope,
            construct_id,
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.X86_64,
            handler=handler,
            code=lambda_code(runtime),
            layers=[self.layer, self.sdk_layer],
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": service,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            },
            timeout=Duration.seconds(timeout_s),
            memory_size=memory_mb,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            role=role,
            description=description,
            dead_letter_queue=dead_letter_queue,
        )
        log_group.grant_write(role)
        ignore_implied_dependency(function)
        Validations.of(function).acknowledge(
            Acknowledgment(
                id="AwsSolutions-L1",
                reason=(
                    "Pinned to python3.13: AWS publishes the Powertools layer this function uses "
                    "(AWSLambdaPowertoolsPythonV3-python313) for python3.12 and python3.13 only; move both together."
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

    def state_machine(self, construct_id: str, definition: sfn.IChainable, name: str) -> sfn.StateMachine:
        # Under /aws/vendedlogs/: CloudWatch Logs' resource policy for vended (service-delivered)
        # logs has a 5,120-character limit that per-group entries outside this prefix exhaust.
        log_group = logs.LogGroup(
            self.scope,
            f"{construct_id}Logs",
            retention=self.log_retention,
            log_group_name=f"{STATE_MACHINE_LOG_PREFIX}{name}",
            removal_policy=RemovalPolicy.DESTROY,
        )
        machine = sfn.StateMachine(
            self.scope,
            construct_id,
            state_machine_name=name,  # the deploy lock tells live lock holders by this name
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        ignore_implied_dependency(machine)
        acknowledge(
            machine.role,
            "X-Ray tracing, sagemaker:ListTags and cloudwatch:PutMetricData (held to the pipeline's namespace by "
            "a condition) support no resource-level permissions.",
            "AwsSolutions-IAM5[Resource::*]",
        )
        return machine


def ignore_implied_dependency(construct: Construct) -> None:
    # CDK adds an explicit DependsOn on the role next to the GetAtt it already makes (so the role's
    # policy exists before first use); cfn-lint W3005 flags the repetition. Silenced for this
    # resource only: the DependsOn is generated, and harmless.
    construct.node.default_child.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})
