"""Delete what the pipeline created in SageMaker at run time (not CloudFormation resources).

Only names recorded in the model registry, plus the one endpoint, are touched; nothing in the
data bucket is read or deleted.
"""

from __future__ import annotations

from typing import Any, Iterable

from botocore.exceptions import ClientError

import autoscaling

_MISSING = ("Could not find", "does not exist", "not found")


def running_executions(sfn: Any, state_machine_arns: Iterable[str]) -> list[str]:
    arns = []
    for machine in state_machine_arns:
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine, statusFilter="RUNNING"):
            arns.extend(execution["executionArn"] for execution in page["executions"])
    return arns


def recorded_names(dynamodb: Any, table: str) -> tuple[set[str], set[str]]:
    """(SageMaker model names, endpoint config names) in the registry."""
    models, configs = set(), set()
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table, ProjectionExpression="sagemakerModelName, endpointConfigName"
    ):
        for item in page["Items"]:
            if "sagemakerModelName" in item:
                models.add(item["sagemakerModelName"]["S"])
            if "endpointConfigName" in item:
                configs.add(item["endpointConfigName"]["S"])
    return models, configs


def _ignore_missing(call: Any, **kwargs: Any) -> bool:
    try:
        call(**kwargs)
        return True
    except ClientError as error:
        if any(text in error.response["Error"].get("Message", "") for text in _MISSING):
            return False
        raise


def clean_up(sagemaker: Any, sfn: Any, dynamodb: Any, *, table: str, endpoint_name: str,
             state_machine_arns: Iterable[str], application_autoscaling: Any = None,
             cloudwatch: Any = None) -> dict[str, list[str]]:
    """Stop pipeline executions, then remove the endpoint's autoscaling and delete the endpoint,
    its configs and models. Idempotent."""
    stopped = running_executions(sfn, state_machine_arns)
    for arn in stopped:
        _ignore_missing(sfn.stop_execution, executionArn=arn, cause="Stack is being deleted")
    models, configs = recorded_names(dynamodb, table)
    deleted: dict[str, list[str]] = {"stoppedExecutions": stopped, "endpoints": [], "endpointConfigs": [], "models": []}
    if application_autoscaling is not None and cloudwatch is not None:
        removed = autoscaling.deregister_scaling(application_autoscaling, cloudwatch, endpoint_name)
        deleted["scalableTargets"] = [autoscaling.resource_id(endpoint_name)] if removed else []
    if _ignore_missing(sagemaker.delete_endpoint, EndpointName=endpoint_name):
        deleted["endpoints"].append(endpoint_name)
    for name in sorted(configs):
        if _ignore_missing(sagemaker.delete_endpoint_config, EndpointConfigName=name):
            deleted["endpointConfigs"].append(name)
    for name in sorted(models):
        if _ignore_missing(sagemaker.delete_model, ModelName=name):
            deleted["models"].append(name)
    return deleted
