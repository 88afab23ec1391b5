"""Cleanup: on `cdk destroy`, the SageMaker resources the pipeline created at run time.

A custom resource (construct id SageMakerCleanup) whose Delete runs lambda/cleanup/cleanup.py: first
stop what could create the endpoint again (disable the dispatcher's rules, mark the live pointer
so that no deployment runs and no dispatcher heals, stop the state machines' executions), then
deregister the endpoint's autoscaling, delete the endpoint and the configs and models this stack
tagged. The bucket and its data are never touched.
"""

from __future__ import annotations

from typing import Sequence

from aws_cdk import ArnFormat, CfnResource, CustomResource, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn

from dreambooth_shared.contract import LIVE_POINTER_ID
from stacks.config import STACK_TAG_KEY
from stacks.serving.construct import grant_autoscaling
from stacks.shared import arns
from stacks.shared.functions import PipelineFunctions
from stacks.shared.nag import acknowledge, arn_prefix

_COLON_ARN = ArnFormat.COLON_RESOURCE_NAME


class SageMakerCleanup:
    """The cleanup function (construct id Cleanup) and its custom resource.

    Attributes: function, resource.
    """

    def __init__(
        self,
        functions: PipelineFunctions,
        *,
        registry_table: dynamodb.ITable,
        endpoint_name: str,
        machines: list[tuple[sfn.StateMachine, str]],
    ) -> None:
        scope = functions.scope
        self.function = function = functions.function(
            "Cleanup",
            "cleanup",
            "cleanup.handler",
            {},
            timeout_s=300,
            description="On stack deletion, deletes the pipeline's SageMaker endpoint, configs and models",
        )
        stack = Stack.of(scope)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DeleteEndpoint"],
                resources=[arns.endpoint_arn(scope, endpoint_name)],
            )
        )
        # Configs and models are named per model version: only the ones this stack tagged.
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel"],
                resources=[
                    arns.endpoint_config_arns(scope),
                    stack.format_arn(service="sagemaker", resource="model", resource_name="*"),
                ],
                conditions={"StringEquals": {f"aws:ResourceTag/{STACK_TAG_KEY}": stack.stack_name}},
            )
        )
        for machine, name in machines:
            function.add_to_role_policy(
                iam.PolicyStatement(actions=["states:ListExecutions"], resources=[machine.state_machine_arn])
            )
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["states:StopExecution"],
                    resources=[
                        stack.format_arn(
                            service="states", resource="execution", resource_name=f"{name}:*", arn_format=_COLON_ARN
                        )
                    ],
                )
            )
            acknowledge(
                function.role,
                "Executions are named at run time; only this state machine's are stopped.",
                f"AwsSolutions-IAM5[Resource::{arn_prefix(scope, 'states')}execution:{name}:*]",
            )
        registry_table.grant(function, "dynamodb:Scan")
        # The stack-deleting mark, on the live pointer only.
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[registry_table.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [LIVE_POINTER_ID]}},
            )
        )
        grant_autoscaling(scope, function, endpoint_name, register=False)  # deregisters the endpoint's scalable target
        self.resource = CustomResource(
            scope,
            "SageMakerCleanup",
            service_token=function.function_arn,
            resource_type="Custom::DreamBoothSageMakerCleanup",
            properties={
                "RegistryTableName": registry_table.table_name,
                "EndpointName": endpoint_name,
                "StateMachineArns": [machine.state_machine_arn for machine, _ in machines],
            },
        )
        # Its references (table, state machines, function) make `cdk destroy` delete it first,
        # while they all still exist.
        sagemaker_arn = arn_prefix(scope, "sagemaker")
        acknowledge(
            function.role,
            "Endpoint configs and models are named per model version at run time; the function "
            "deletes only the names recorded in the registry.",
            f"AwsSolutions-IAM5[Resource::{sagemaker_arn}endpoint-config/*]",
            f"AwsSolutions-IAM5[Resource::{sagemaker_arn}model/*]",
        )

    def stop_first(self, rules: Sequence[events.IRule]) -> None:
        """Deletion disables `rules` (the dispatcher's: it re-creates a missing endpoint) before it
        deletes anything. The custom resource references them (their names), so it depends on them:
        CloudFormation runs the cleanup while they exist and deletes them only after it. Only these
        rules may be disabled."""
        resource = self.resource.node.default_child
        assert isinstance(resource, CfnResource)
        resource.add_property_override("DispatchRuleNames", [rule.rule_name for rule in rules])
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["events:DisableRule"], resources=[rule.rule_arn for rule in rules])
        )
