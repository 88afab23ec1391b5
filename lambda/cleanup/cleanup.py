"""CloudFormation custom resource: on stack deletion, remove the pipeline's SageMaker resources.

Create and Update do nothing. The response goes straight to CloudFormation's pre-signed URL
(no provider framework: one small function, no extra roles).
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

import sagemaker_cleanup
from dreambooth_shared.contract import log_cold_start

logger = Logger()
log_cold_start(logger)
sagemaker = boto3.client("sagemaker")
sfn = boto3.client("stepfunctions")
dynamodb = boto3.client("dynamodb")
application_autoscaling = boto3.client("application-autoscaling")
cloudwatch = boto3.client("cloudwatch")
eventbridge = boto3.client("events")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> None:
    status, reason, data = "SUCCESS", "", {}
    try:
        if event["RequestType"] == "Delete":
            properties = event["ResourceProperties"]
            deleted = sagemaker_cleanup.clean_up(
                sagemaker,
                sfn,
                dynamodb,
                table=properties["RegistryTableName"],
                endpoint_name=properties["EndpointName"],
                state_machine_arns=properties["StateMachineArns"],
                application_autoscaling=application_autoscaling,
                cloudwatch=cloudwatch,
                events=eventbridge,
                dispatch_rule_names=properties.get("DispatchRuleNames", []),
            )
            logger.info("deleted run-time SageMaker resources", **deleted)
            data = {name: ",".join(values)[:1000] for name, values in deleted.items()}
    except Exception as error:  # CloudFormation must always get an answer, or it waits for an hour
        logger.exception("cleanup failed")
        status, reason = "FAILED", f"{type(error).__name__}: {error}"[:500]
    respond(event, context, status, reason, data)


def respond(event: dict[str, Any], context: Any, status: str, reason: str, data: dict[str, str]) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason or f"See CloudWatch log stream {getattr(context, 'log_stream_name', '')}",
            "PhysicalResourceId": event.get("PhysicalResourceId")
            or f"{os.environ.get('AWS_LAMBDA_FUNCTION_NAME', 'cleanup')}-sagemaker-cleanup",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - CloudFormation's pre-signed https URL
        logger.info("answered CloudFormation", status=status, http_status=response.status)
