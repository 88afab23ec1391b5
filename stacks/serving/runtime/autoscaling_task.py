"""Deploy state machine task around autoscaling.py: {"action": "register" | "deregister", "endpointName"}."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

import autoscaling
from contract import PipelineEnv, log_cold_start

logger = Logger()
log_cold_start(logger)
tracer = Tracer()
application_autoscaling = boto3.client("application-autoscaling")
cloudwatch = boto3.client("cloudwatch")


@dataclass(frozen=True)
class ScalingSettings:
    max_instances: int
    target_backlog: int
    idle_minutes: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "ScalingSettings":
        return cls(int(environ[PipelineEnv.MAX_INSTANCES]), int(environ[PipelineEnv.TARGET_BACKLOG_PER_INSTANCE]),
                   int(environ[PipelineEnv.IDLE_MINUTES]))


settings = ScalingSettings.from_environ(os.environ)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    endpoint = event["endpointName"]
    if event.get("action") == "deregister":
        removed = autoscaling.deregister_scaling(application_autoscaling, cloudwatch, endpoint)
        logger.info("autoscaling deregistered before the update", endpoint=endpoint, removed=removed)
        return {"deregistered": removed}
    applied = autoscaling.register_scaling(
        application_autoscaling, cloudwatch, endpoint, max_instances=settings.max_instances,
        target_backlog=settings.target_backlog, idle_minutes=settings.idle_minutes)
    logger.info("autoscaling registered", endpoint=endpoint, **applied)
    return applied
