"""Two small handlers around endpoint_wait: park a deployment's task token, wake it on an event."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

import endpoint_wait
from dreambooth_shared.contract import PipelineEnv, log_cold_start

logger = Logger()
log_cold_start(logger)
tracer = Tracer()
# Written as CloudWatch embedded-metric-format log lines (no PutMetricData call, no extra permission).
metrics = Metrics()
dynamodb = boto3.client("dynamodb")
sagemaker = boto3.client("sagemaker")
sfn = boto3.client("stepfunctions")


@dataclass(frozen=True)
class Settings:
    state_table: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        return cls(state_table=environ[PipelineEnv.STATE_TABLE_NAME])


settings = Settings.from_environ()


def _record(description: Mapping[str, Any]) -> None:
    """Endpoint state and, while Creating/Updating, for how long (the "endpoint stuck" alarm)."""
    metrics.add_metric(
        name=endpoint_wait.METRIC_IN_SERVICE,
        unit=MetricUnit.NoUnit,
        value=endpoint_wait.in_service(description["EndpointStatus"]),
    )
    minutes = endpoint_wait.minutes_in_transition(description, datetime.now(timezone.utc))
    if minutes is not None:
        metrics.add_metric(name=endpoint_wait.METRIC_TRANSITION_MINUTES, unit=MetricUnit.NoUnit, value=minutes)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def park(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Step Functions task (waitForTaskToken): {"taskToken", "endpointName"}."""
    woken = endpoint_wait.park(
        dynamodb,
        sagemaker,
        sfn,
        table=settings.state_table,
        endpoint=event["endpointName"],
        token=event["taskToken"],
        on_described=_record,
    )
    logger.info("deployment waiting for its endpoint", endpoint=event["endpointName"], already_settled=woken)
    return {"woken": woken}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def on_state_change(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """EventBridge "SageMaker Endpoint State Change"."""
    detail = event["detail"]
    metrics.add_metric(
        name=endpoint_wait.METRIC_IN_SERVICE,
        unit=MetricUnit.NoUnit,
        value=endpoint_wait.in_service(detail["EndpointStatus"]),
    )
    woken = endpoint_wait.wake(
        dynamodb, sfn, table=settings.state_table, endpoint=detail["EndpointName"], status=detail["EndpointStatus"]
    )
    logger.info(
        "endpoint state change", endpoint=detail["EndpointName"], status=detail["EndpointStatus"], woke_deployment=woken
    )
    return {"woken": woken}
