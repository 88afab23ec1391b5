"""Handlers around endpoint_sleep: the scheduled idle check, and the deploy state machine's scaling task."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

import endpoint_sleep

logger = Logger()
tracer = Tracer()
dynamodb = boto3.client("dynamodb")
sagemaker = boto3.client("sagemaker")
cloudwatch = boto3.client("cloudwatch")
sfn = boto3.client("stepfunctions")
autoscaling = boto3.client("application-autoscaling")
sns = boto3.client("sns")
# Read once per container, as the function was configured (the two handlers get different variables).
ENVIRON = dict(os.environ)


@dataclass(frozen=True)
class ScalingSettings:
    min_instances: int
    max_instances: int
    target_invocations: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "ScalingSettings":
        return cls(int(environ["MIN_INSTANCES"]), int(environ["MAX_INSTANCES"]),
                   int(environ["TARGET_INVOCATIONS_PER_INSTANCE"]))


def _idle_settings(environ: Mapping[str, str]) -> endpoint_sleep.IdleSettings:
    return endpoint_sleep.IdleSettings(
        registry_table=environ["REGISTRY_TABLE_NAME"], state_table=environ["STATE_TABLE_NAME"],
        endpoint_name=environ["ENDPOINT_NAME"], deploy_state_machine_arn=environ["DEPLOY_STATE_MACHINE_ARN"],
        idle_minutes=int(environ["IDLE_MINUTES"]), topic_arn=environ.get("TOPIC_ARN", ""),
    )


def scheduled_time(event: Mapping[str, Any]) -> datetime:
    """The moment the schedule fired (the event's `time`); a late or retried delivery then judges
    idleness as of that moment, never later. Without a readable time: now."""
    fired = endpoint_sleep.parse_iso(event.get("time")) if isinstance(event, Mapping) else None
    return fired or datetime.now(timezone.utc)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def check_idle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """EventBridge schedule: put the endpoint to sleep when it has been idle long enough."""
    check = endpoint_sleep.IdleCheck(_idle_settings(ENVIRON), dynamodb=dynamodb, sagemaker=sagemaker,
                                     cloudwatch=cloudwatch, sfn=sfn, autoscaling=autoscaling, sns=sns)
    decision = check.run(scheduled_time(event), context.aws_request_id)
    logger.info("idle check", action=decision.action, detail=decision.detail, last_used_at=decision.last_used_at)
    return {"action": decision.action, "detail": decision.detail, "lastUsedAt": decision.last_used_at}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def scaling(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Deploy state machine task: {"action": "register" | "deregister", "endpointName": ...}."""
    endpoint = event["endpointName"]
    if event.get("action") == "deregister":
        removed = endpoint_sleep.deregister_scaling(autoscaling, endpoint)
        logger.info("autoscaling deregistered before the update", endpoint=endpoint, removed=removed)
        return {"deregistered": removed}
    settings = ScalingSettings.from_environ(ENVIRON)
    applied = endpoint_sleep.register_scaling(
        autoscaling, endpoint, min_instances=settings.min_instances, max_instances=settings.max_instances,
        target_invocations=settings.target_invocations)
    logger.info("autoscaling registered", endpoint=endpoint, **applied)
    return applied
