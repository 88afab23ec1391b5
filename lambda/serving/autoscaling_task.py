"""The endpoint's autoscaling (autoscaling.py), for the deploy state machine and the dispatcher.

Events: {"action": "prepare-update", "endpointName", "endpointConfigName"} before an UpdateEndpoint:
removes the scalable target only when SageMaker would refuse the update with it (answers
{"deregistered": bool, "reason"}); {"action": "register", "endpointName"}: registers the scaling
for the config the endpoint runs now, once it is InService (answers {"registered": false,
"endpointStatus"} otherwise: the dispatcher's periodic check registers it once it is)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from dreambooth_shared import autoscaling
from dreambooth_shared.contract import PipelineEnv, log_cold_start

logger = Logger()
log_cold_start(logger)
tracer = Tracer()
application_autoscaling = boto3.client("application-autoscaling")
cloudwatch = boto3.client("cloudwatch")
sagemaker = boto3.client("sagemaker")


@dataclass(frozen=True)
class ScalingSettings:
    max_instances: int
    target_backlog: int
    idle_minutes: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "ScalingSettings":
        return cls(
            int(environ[PipelineEnv.MAX_INSTANCES]),
            int(environ[PipelineEnv.TARGET_BACKLOG_PER_INSTANCE]),
            int(environ[PipelineEnv.IDLE_MINUTES]),
        )


settings = ScalingSettings.from_environ(os.environ)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    endpoint = event["endpointName"]
    if event.get("action") == "prepare-update":
        reason = autoscaling.update_blocked_by_scaling(sagemaker, endpoint, event["endpointConfigName"])
        removed = bool(reason) and autoscaling.deregister_scaling(application_autoscaling, cloudwatch, endpoint)
        logger.info(
            "autoscaling before the update",
            endpoint=endpoint,
            deregistered=removed,
            reason=reason or "the update keeps every variant's instance type",
        )
        return {"deregistered": removed, "reason": reason or ""}
    status, config = autoscaling.current_config(sagemaker, endpoint)
    if status != "InService":
        logger.warning("autoscaling not registered: the endpoint is not InService", endpoint=endpoint, status=status)
        return {"registered": False, "endpointStatus": status or "missing"}
    applied = autoscaling.register_scaling(
        application_autoscaling,
        cloudwatch,
        endpoint,
        max_instances=settings.max_instances,
        target_backlog=settings.target_backlog,
        idle_minutes=settings.idle_minutes,
    )
    logger.info("autoscaling registered", endpoint=endpoint, endpointConfig=config, **applied)
    return {"registered": True, "endpointConfigName": config, **applied}
