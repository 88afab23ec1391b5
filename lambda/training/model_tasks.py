"""Step Functions task after training: unpack the output and add the inference code the endpoint needs (model_package.py)."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

import model_package
from dreambooth_shared.contract import PackagedLog, PipelineEnv, log_cold_start

logger = Logger()
log_cold_start(logger)
tracer = Tracer()
s3 = boto3.client("s3")
INFERENCE_SCRIPT_URI = os.environ[PipelineEnv.INFERENCE_SCRIPT_URI]


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def package(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"modelUri": <training output: model.tar.gz, or a prefix>} -> {"modelDataUri" (a prefix), "added", "files"}."""
    result = model_package.add_inference_code(s3, event["modelUri"], INFERENCE_SCRIPT_URI)
    logger.info(
        PackagedLog.MESSAGE,
        model_uri=result["modelDataUri"],
        **{PackagedLog.TRAINING_OUTPUT: event["modelUri"], PackagedLog.CODE_ADDED: result["added"]},
        files=result["files"],
        script_uri=INFERENCE_SCRIPT_URI,
    )
    return result
