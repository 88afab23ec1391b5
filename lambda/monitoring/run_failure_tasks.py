"""EventBridge target: a pipeline execution FAILED or TIMED_OUT (logic in run_failures.py)."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

import run_failures
from dreambooth_shared.contract import PipelineEnv, log_cold_start

logger = Logger()
log_cold_start(logger)
tracer = Tracer()
dynamodb = boto3.client("dynamodb")
sns = boto3.client("sns")
MACHINES = run_failures.Machines(
    training_arn=os.environ[PipelineEnv.TRAINING_STATE_MACHINE_ARN],
    deploy_arn=os.environ[PipelineEnv.DEPLOY_STATE_MACHINE_ARN],
    in_progress={
        os.environ[PipelineEnv.TRAINING_STATE_MACHINE_ARN]: tuple(os.environ[PipelineEnv.TRAINING_STATUSES].split(",")),
        os.environ[PipelineEnv.DEPLOY_STATE_MACHINE_ARN]: tuple(os.environ[PipelineEnv.DEPLOY_STATUSES].split(",")),
    },
    failed_status=os.environ[PipelineEnv.FAILED_STATUS],
)
REGISTRY_TABLE = os.environ[PipelineEnv.REGISTRY_TABLE_NAME]
TOPIC_ARN = os.environ[PipelineEnv.TOPIC_ARN]


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    detail = event["detail"]
    result = run_failures.on_execution_end(
        detail, registry=dynamodb, sns=sns, table=REGISTRY_TABLE, topic_arn=TOPIC_ARN, machines=MACHINES
    )
    logger.info(
        "execution ended",
        execution=detail["executionArn"],
        execution_status=detail["status"],
        error=detail.get("error"),
        outcome=result,
    )
    return result
