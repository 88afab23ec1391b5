"""Serving: the deploy workflow's state machine, the endpoint waiters and the endpoint's autoscaling.

- `Serving`: the deploy state machine (workflow.py: lock, model, endpoint config, create or update
  the endpoint, wait, go live), the two waiter functions that park a deployment's wait and wake it
  on SageMaker's endpoint state-change event (lambda/serving/endpoint_waiter.py), the autoscaling function
  that registers the variant's scaling after InService and on every failure after it removed it for
  an update (dreambooth_shared/autoscaling.py: scale to zero after idleMinutes, and out from zero on a backlog;
  the dispatcher invokes it too, for an endpoint that lost it), and the topics SageMaker's asynchronous inference
  notices go to.
- `grant_autoscaling`: what registering (or only deregistering) that scaling needs.
"""

from __future__ import annotations

from typing import Optional

from aws_cdk import ArnFormat, Aws, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from dreambooth_shared.contract import INFERENCE_FAILURES_PREFIX, INFERENCE_OUTPUTS_PREFIX, PipelineEnv
from stacks.config import ConfigError, ServingConfig
from stacks.notifications.construct import Notifications
from stacks.serving.workflow import AsyncOutput, DeployWorkflow, HistoryBudget
from stacks.shared import arns, sfn_budget
from stacks.shared.functions import PipelineFunctions
from stacks.shared.nag import acknowledge, arn_prefix
from stacks.training.jumpstart_lock import JumpStartArtifacts, JumpStartLock

AUTOSCALING_SLR_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
_COLON_ARN = ArnFormat.COLON_RESOURCE_NAME


class Serving:
    """Everything between a trained model and traffic on the endpoint.

    Construct ids (in the functions' scope): EndpointWaitPark, EndpointStateChange, EndpointStateChanged
    (rule), EndpointAutoscaling, InferenceSucceeded, InferenceFailed (topics), Deploy (workflow),
    DeployStateMachine.
    Attributes: park_function, endpoint_event_function, endpoint_rule, scaling_function,
    inference_success_topic, inference_error_topic, deploy_state_machine, deploy_name.
    """

    def __init__(
        self,
        functions: PipelineFunctions,
        *,
        bucket: s3.IBucket,
        registry_table: dynamodb.ITable,
        state_table: dynamodb.ITable,
        notifications: Notifications,
        endpoint_name: str,
        hosting_role: iam.IRole,
        artifacts: JumpStartArtifacts,
        lock: JumpStartLock,
        serving: ServingConfig,
        deploy_name: str,
    ) -> None:
        scope = functions.scope
        stack = Stack.of(scope)
        self.deploy_name = deploy_name
        deploy_arn = stack.format_arn(
            service="states", resource="stateMachine", resource_name=deploy_name, arn_format=_COLON_ARN
        )
        waiter_environment = {PipelineEnv.STATE_TABLE_NAME: state_table.table_name}
        self.park_function = functions.function(
            "EndpointWaitPark",
            "serving",
            "endpoint_waiter.park",
            waiter_environment,
            timeout_s=30,
            description="Parks a deployment's wait for its endpoint",
        )
        self.endpoint_event_function = functions.function(
            "EndpointStateChange",
            "serving",
            "endpoint_waiter.on_state_change",
            waiter_environment,
            timeout_s=30,
            description="Wakes the deployment waiting for the endpoint when SageMaker reports a state change",
        )
        state_table.grant(self.park_function, "dynamodb:PutItem")
        state_table.grant(self.endpoint_event_function, "dynamodb:GetItem")
        self.park_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpoint"],
                resources=[arns.endpoint_arn(scope, endpoint_name)],
            )
        )
        for waiter in (self.park_function, self.endpoint_event_function):
            waiter.add_to_role_policy(iam.PolicyStatement(actions=["states:SendTaskSuccess"], resources=[deploy_arn]))
        self.endpoint_rule = events.Rule(
            scope,
            "EndpointStateChanged",
            description="SageMaker state changes of the pipeline's endpoint",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Endpoint State Change"],
                detail={"EndpointName": [endpoint_name]},
            ),
        )
        self.endpoint_rule.add_target(
            targets.LambdaFunction(self.endpoint_event_function, retry_attempts=4, max_event_age=Duration.hours(1))
        )
        self.scaling_function = functions.function(
            "EndpointAutoscaling",
            "serving",
            "autoscaling_task.handler",
            {
                PipelineEnv.MAX_INSTANCES: str(serving.max_instances),
                PipelineEnv.TARGET_BACKLOG_PER_INSTANCE: str(serving.target_backlog_per_instance),
                PipelineEnv.IDLE_MINUTES: str(serving.idle_minutes),
            },
            timeout_s=60,
            description="Registers (or removes) the endpoint variant's autoscaling and its alarms",
        )
        grant_autoscaling(scope, self.scaling_function, endpoint_name, register=True)
        # SageMaker publishes asynchronous inference results with the hosting role.
        self.inference_success_topic = _inference_topic(
            scope, "InferenceSucceeded", "succeeded", notifications, hosting_role
        )
        self.inference_error_topic = _inference_topic(scope, "InferenceFailed", "failed", notifications, hosting_role)
        async_output = AsyncOutput(
            output_uri=bucket.s3_url_for_object(INFERENCE_OUTPUTS_PREFIX.rstrip("/")),
            failure_uri=bucket.s3_url_for_object(INFERENCE_FAILURES_PREFIX.rstrip("/")),
            success_topic=self.inference_success_topic,
            error_topic=self.inference_error_topic,
        )
        deploy = DeployWorkflow(
            scope,
            "Deploy",
            registry_table=registry_table,
            state_table=state_table,
            topic=notifications.topic,
            endpoint_name=endpoint_name,
            hosting_role=hosting_role,
            inference_image=artifacts.inference_image,
            inference_environment=lock.inference_environment,
            instance_type=serving.instance_type,
            poll_interval_s=serving.endpoint_poll_s,
            max_polls=max_polls_for(serving),
            lock_owner_arn_pattern=stack.format_arn(
                service="states", resource="execution", resource_name=f"{deploy_name}:*", arn_format=_COLON_ARN
            ),
            park_function=self.park_function,
            scaling_function=self.scaling_function,
            async_output=async_output,
        )
        self.deploy_state_machine = functions.state_machine("DeployStateMachine", deploy.definition, deploy_name)
        check_history_budget(deploy, serving)
        deploy.grant_create_model(self.deploy_state_machine.role)
        deploy.restrict_to_own_resources(self.deploy_state_machine.role)
        sagemaker_arn = arn_prefix(scope, "sagemaker")
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
            f"AwsSolutions-IAM5[Resource::{arn_prefix(scope, 'states')}execution:{deploy_name}:*]",
        )
        # Deleting an endpoint whose variant is a scalable target (a failed one, a real-time one):
        # Application Auto Scaling deregisters it with the caller's permission, else the delete is
        # refused (SageMaker developer guide, "Delete endpoints configured for auto scaling").
        self.deploy_state_machine.add_to_role_policy(
            iam.PolicyStatement(actions=["application-autoscaling:DeregisterScalableTarget"], resources=["*"])
        )
        acknowledge(
            self.deploy_state_machine.role,
            "X-Ray tracing, sagemaker:ListTags and cloudwatch:PutMetricData (held to the pipeline's namespace by "
            "a condition) support no resource-level permissions; application-autoscaling:DeregisterScalableTarget "
            "(for DeleteEndpoint) has none either (scalable targets get generated ids).",
            "AwsSolutions-IAM5[Resource::*]",
        )
        acknowledge(
            self.deploy_state_machine.role,
            "CDK's LambdaInvoke task grants the function and its versions (`<arn>:*`).",
            *(
                f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(fn.node.default_child)}.Arn>:*]"
                for fn in (self.park_function, self.scaling_function)
            ),
        )


def _inference_topic(
    scope: Construct, construct_id: str, outcome: str, notifications: Notifications, hosting_role: iam.IRole
) -> sns.Topic:
    topic = sns.Topic(
        scope,
        construct_id,
        display_name=f"DreamBooth generations {outcome}",
        enforce_ssl=True,
        master_key=notifications.key,
    )
    # Not grant_publish: it adds kms:GenerateDataKey* on the key; the exact two actions are granted below.
    hosting_role.add_to_principal_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]))
    notifications.grant_key(hosting_role)
    return topic


def grant_autoscaling(scope: Construct, function: lambda_.Function, endpoint_name: str, *, register: bool) -> None:
    """Application Auto Scaling on the endpoint's variant, and its alarms (register, or only deregister)."""
    stack = Stack.of(scope)
    actions = ["application-autoscaling:DeregisterScalableTarget"]
    if register:
        actions += [
            "application-autoscaling:DescribeScalableTargets",
            "application-autoscaling:DescribeScalingPolicies",
            "application-autoscaling:DeleteScalingPolicy",
            "application-autoscaling:RegisterScalableTarget",
            "application-autoscaling:PutScalingPolicy",
        ]
    # Scalable targets get a generated id in their ARN, unknown before registration.
    function.add_to_role_policy(iam.PolicyStatement(actions=actions, resources=["*"]))
    alarms = [
        stack.format_arn(service="cloudwatch", resource="alarm", resource_name=name, arn_format=_COLON_ARN)
        for name in (f"TargetTracking-endpoint/{endpoint_name}/*", f"{endpoint_name}-*")
    ]
    # Deregistering deletes the target's policies and their alarms with the caller's permissions;
    # the step policies' two alarms (scale out from zero, scale in when idle) are ours to delete.
    alarm_actions = ["cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"]
    findings = [
        f"AwsSolutions-IAM5[Resource::{arn_prefix(scope, 'cloudwatch')}alarm:TargetTracking-endpoint/"
        f"{endpoint_name}/*]",
        f"AwsSolutions-IAM5[Resource::{arn_prefix(scope, 'cloudwatch')}alarm:{endpoint_name}-*]",
    ]
    reason = (
        "The target-tracking alarms are named by Application Auto Scaling under this endpoint's prefix, "
        "the step policies' alarms `<endpoint>-scale-out-from-zero` / `-scale-in-when-idle` by this stack"
    )
    if register:
        # What Application Auto Scaling checks and does with the caller's permissions when it
        # registers a SageMaker variant and puts its target-tracking alarms.
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:UpdateEndpointWeightsAndCapacities",
                ],
                resources=[arns.endpoint_arn(scope, endpoint_name), arns.endpoint_config_arns(scope)],
            )
        )
        alarm_actions.insert(0, "cloudwatch:PutMetricAlarm")
        findings.append(f"AwsSolutions-IAM5[Resource::{arn_prefix(scope, 'sagemaker')}endpoint-config/*]")
        reason += "; endpoint configs are named per model version at run time"
        # The service-linked role Application Auto Scaling uses for SageMaker variants, created
        # on first registration; nothing else may be created.
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:CreateServiceLinkedRole"],
                resources=[
                    f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/aws-service-role/"
                    f"{AUTOSCALING_SLR_SERVICE}/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
                ],
                conditions={"StringLike": {"iam:AWSServiceName": AUTOSCALING_SLR_SERVICE}},
            )
        )
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
    most_wait = next(
        (m for m in range(wait, 4, -1) if sfn_budget.fits(budget.total(max_polls_for(serving, max_wait_minutes=m)))),
        None,
    )
    options = [
        f"endpointPollSeconds of at least {least_poll}" if least_poll else "",
        f"endpointMaxWaitMinutes of at most {most_wait}" if most_wait else "",
    ]
    raise ConfigError(
        "endpointPollSeconds",
        poll,
        f"with endpointMaxWaitMinutes={wait} a deployment may check the endpoint {max_polls_for(serving)} times "
        f"(and wait as often for a busy one), writing up to {events} Step Functions history events "
        f"({budget.poll_turn} per check, {budget.busy_turn} per busy wait, {budget.lock_turn} per lock check); an "
        f"execution may write {sfn_budget.HISTORY_EVENT_LIMIT} (less {sfn_budget.HISTORY_EVENT_RESERVE} kept for "
        "retries). Use " + " or ".join(o for o in options if o),
    )
