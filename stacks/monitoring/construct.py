"""Operations: a CloudWatch dashboard, and alarms to the notifications topic.

Where each figure comes from:
- pipeline runs and failures: Step Functions' own AWS/States metrics of both state machines;
- training time, billable time and loss: published by the training state machine itself
  (aws-sdk PutMetricData after each trained model; see stacks/training/workflow.py);
- endpoint traffic: SageMaker's AWS/SageMaker metrics (EndpointName + VariantName);
- endpoint state: `EndpointInService` (1 InService, 0 otherwise) from the endpoint state-change
  handler, and `EndpointTransitionMinutes` from the deployment's wait handler (Powertools
  Metrics, i.e. EMF log lines; see lambda/serving/endpoint_waiter.py);
- API: API Gateway's AWS/ApiGateway metrics of the stage (ApiName + Stage);
- generations: the API's own Powertools metrics (GenerationsRequested: every accepted
  generation; GenerationsSucceeded/Failed from the result function).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from aws_cdk import ArnFormat, Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from dreambooth_shared.contract import (
    API_SERVICE,
    METRIC_BILLABLE_SECONDS,
    METRIC_ENDPOINT_IN_SERVICE,
    METRIC_ENDPOINT_TRANSITION_MINUTES,
    METRIC_GENERATIONS_FAILED,
    METRIC_GENERATIONS_REQUESTED,
    METRIC_GENERATIONS_SUCCEEDED,
    METRIC_TRAIN_LOSS,
    METRIC_TRAINING_SECONDS,
    METRICS_NAMESPACE,
    PIPELINE_SERVICE,
    RESULTS_SERVICE,
)
from stacks.config import MonitoringConfig

ALARM_PERIOD = Duration.minutes(5)


@dataclass(frozen=True)
class ApiMetricsSource:
    """What the dashboard reads of the HTTPS API (None parts are left off)."""

    stage: apigw.Stage
    failed_notices: Optional[sqs.IQueue] = None
    """Result notices SNS could not deliver to the result function."""


class Monitoring(Construct):
    """Dashboard and alarms over the pipeline, the endpoint and the API.

    Props:
      topic / topic_key: the notifications topic and its customer-managed key; alarms publish to
        it (the key policy and topic policy gain CloudWatch, limited to this account's alarms).
      training_state_machine / deploy_state_machine: the pipeline's two state machines.
      endpoint_name / variant_name: the SageMaker endpoint the pipeline creates at run time.
      api: the API stage (and its failed-dispatch queue), or None for no API widgets/alarm.
      config: thresholds (MonitoringConfig; defaults in docs/configuration.md).

    Attributes: dashboard, alarms (name -> Alarm: TrainingFailed, DeployFailed, Api5xxRate,
      EndpointErrors, EndpointStuck).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: sns.ITopic,
        topic_key: kms.IKey,
        training_state_machine: sfn.IStateMachine,
        deploy_state_machine: sfn.IStateMachine,
        endpoint_name: str,
        variant_name: str,
        api: Optional[ApiMetricsSource],
        config: MonitoringConfig,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._allow_alarms_to_publish(topic, topic_key)
        action = cw_actions.SnsAction(topic)
        endpoint_dims = {"EndpointName": endpoint_name, "VariantName": variant_name}

        def sagemaker(metric: str, statistic: str) -> cw.Metric:
            return cw.Metric(
                namespace="AWS/SageMaker",
                metric_name=metric,
                dimensions_map=endpoint_dims,
                statistic=statistic,
                period=ALARM_PERIOD,
            )

        def custom(metric: str, service: str, statistic: str, label: Optional[str] = None) -> cw.Metric:
            return cw.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=metric,
                dimensions_map={"service": service},
                statistic=statistic,
                period=ALARM_PERIOD,
                label=label,
            )

        self.alarms: dict[str, cw.Alarm] = {}

        def alarm(
            name: str,
            metric: cw.IMetric,
            threshold: float,
            description: str,
            comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        ) -> cw.Alarm:
            created = cw.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=comparison,
                alarm_description=description,
                # No traffic, no deployment, no training: nothing is wrong.
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            created.add_alarm_action(action)
            self.alarms[name] = created
            return created

        # ---- pipeline ----
        for name, machine, what in (
            ("TrainingFailed", training_state_machine, "training"),
            ("DeployFailed", deploy_state_machine, "deploy"),
        ):
            alarm(
                name,
                machine.metric_failed(period=ALARM_PERIOD, statistic="Sum"),
                1,
                f"A {what} state machine execution failed (the pipeline's own notification says why; "
                "a rejected dataset counts too). The live model is unchanged.",
            )

        # ---- endpoint ----
        alarm(
            "EndpointErrors",
            sagemaker("Invocation5XXErrors", "Sum"),
            config.endpoint_5xx_errors,
            f"The endpoint answered at least {config.endpoint_5xx_errors} 5xx error(s) in 5 minutes "
            "(the model container failed); see the endpoint's CloudWatch logs.",
        )
        # The deployment's wait handler runs at every check (at most every endpointPollSeconds)
        # while an endpoint is Creating/Updating and reports for how long it has been so.
        alarm(
            "EndpointStuck",
            custom(METRIC_ENDPOINT_TRANSITION_MINUTES, PIPELINE_SERVICE, "Maximum"),
            config.endpoint_stuck_minutes,
            f"A deployment has waited {config.endpoint_stuck_minutes} minutes or more for the endpoint "
            "to leave Creating/Updating; the previous model keeps serving. Check the endpoint in the "
            "SageMaker console (capacity, image pull, model load).",
        )

        # ---- API ----
        if api is not None:
            errors = api.stage.metric_server_error(period=ALARM_PERIOD, statistic="Sum")
            requests = api.stage.metric_count(period=ALARM_PERIOD, statistic="Sum")
            rate = cw.MathExpression(
                expression="IF(requests > 0, 100 * errors / requests, 0)",
                using_metrics={"errors": errors, "requests": requests},
                period=ALARM_PERIOD,
                label="API 5xx (% of requests)",
            )
            alarm(
                "Api5xxRate",
                rate,
                config.api_5xx_percent,
                f"More than {config.api_5xx_percent}% of API requests answered 5xx in 5 minutes.",
                comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            )

        self.dashboard = self._dashboard(training_state_machine, deploy_state_machine, sagemaker, custom, api)
        CfnOutput(
            self,
            "DashboardName",
            value=self.dashboard.dashboard_name,
            description="CloudWatch dashboard of the pipeline, the endpoint and the API.",
        )

    def _allow_alarms_to_publish(self, topic: sns.ITopic, key: kms.IKey) -> None:
        stack = Stack.of(self)
        alarms = stack.format_arn(
            service="cloudwatch", resource="alarm", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME
        )
        conditions = {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}, "ArnLike": {"aws:SourceArn": alarms}}
        principal = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[principal],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions=conditions,
            )
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[principal], actions=["sns:Publish"], resources=[topic.topic_arn], conditions=conditions
            )
        )

    def _dashboard(
        self,
        training: sfn.IStateMachine,
        deploy: sfn.IStateMachine,
        sagemaker: Any,
        custom: Any,
        api: Optional[ApiMetricsSource],
    ) -> cw.Dashboard:
        def runs(machine: sfn.IStateMachine, what: str) -> cw.GraphWidget:
            return cw.GraphWidget(
                title=f"{what} executions",
                width=8,
                left=[
                    machine.metric_started(statistic="Sum", label="started"),
                    machine.metric_failed(statistic="Sum", label="failed"),
                    machine.metric_timed_out(statistic="Sum", label="timed out"),
                ],
            )

        dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.days(7))
        dashboard.add_widgets(
            cw.TextWidget(
                width=24,
                height=2,
                markdown=(
                    "## DreamBooth pipeline\nTraining and deploy runs, the SageMaker endpoint and the HTTPS API. "
                    "Alarms go to the pipeline's notifications topic. Endpoint state: 1 = InService, 0 = anything "
                    "else (Creating, Updating, Failed, Deleting); no point = no state change reported."
                ),
            ),
        )
        dashboard.add_widgets(
            runs(training, "Training"),
            runs(deploy, "Deploy"),
            cw.GraphWidget(
                title="Training time (s) and loss",
                width=8,
                left=[
                    custom(METRIC_TRAINING_SECONDS, PIPELINE_SERVICE, "Maximum", "training s"),
                    custom(METRIC_BILLABLE_SECONDS, PIPELINE_SERVICE, "Maximum", "billable s"),
                ],
                right=[custom(METRIC_TRAIN_LOSS, PIPELINE_SERVICE, "Average", "train loss")],
            ),
        )
        dashboard.add_widgets(
            cw.GraphWidget(
                title="Endpoint invocations and errors",
                width=8,
                left=[
                    sagemaker("Invocations", "Sum"),
                    sagemaker("Invocation4XXErrors", "Sum"),
                    sagemaker("Invocation5XXErrors", "Sum"),
                ],
            ),
            cw.GraphWidget(
                title="Endpoint model latency (microseconds)",
                width=8,
                left=[sagemaker("ModelLatency", "Average"), sagemaker("ModelLatency", "p90")],
            ),
            cw.GraphWidget(
                title="Endpoint state",
                width=8,
                left=[custom(METRIC_ENDPOINT_IN_SERVICE, PIPELINE_SERVICE, "Minimum", "in service")],
                right=[
                    custom(METRIC_ENDPOINT_TRANSITION_MINUTES, PIPELINE_SERVICE, "Maximum", "minutes creating/updating")
                ],
            ),
        )
        if api is not None:
            stage = api.stage
            generations = [
                custom(METRIC_GENERATIONS_REQUESTED, API_SERVICE, "Sum", "queued"),
                custom(METRIC_GENERATIONS_SUCCEEDED, RESULTS_SERVICE, "Sum", "succeeded"),
                custom(METRIC_GENERATIONS_FAILED, RESULTS_SERVICE, "Sum", "failed"),
            ]
            if api.failed_notices is not None:
                generations.append(
                    api.failed_notices.metric_approximate_number_of_messages_visible(
                        label="result notices undelivered (queue)"
                    )
                )
            dashboard.add_widgets(
                cw.GraphWidget(
                    title="API requests and errors",
                    width=8,
                    left=[
                        stage.metric_count(statistic="Sum", label="requests"),
                        stage.metric_client_error(statistic="Sum", label="4xx"),
                        stage.metric_server_error(statistic="Sum", label="5xx"),
                    ],
                ),
                cw.GraphWidget(
                    title="API latency (ms)",
                    width=8,
                    left=[stage.metric_latency(statistic="Average"), stage.metric_latency(statistic="p90")],
                ),
                cw.GraphWidget(title="Generations", width=8, left=generations),
            )
        dashboard.add_widgets(cw.AlarmStatusWidget(title="Alarms", width=24, alarms=list(self.alarms.values())))
        return dashboard
