"""Delete what the pipeline created in SageMaker at run time (not CloudFormation resources).

Only names recorded in the model registry, plus the one endpoint, are touched; nothing in the
data bucket is read or deleted.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

from botocore.exceptions import ClientError

from dreambooth_shared import autoscaling
from dreambooth_shared.contract import LIVE_POINTER_ID, STACK_DELETING_ATTRIBUTE

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


def stop_dispatcher(events: Any, dynamodb: Any, *, table: str, rule_names: Iterable[str]) -> list[str]:
    """Nothing may create the endpoint again once the cleanup deletes it: the dispatcher's rules are
    disabled (no more runs), and the live pointer says the stack is being deleted (a dispatcher
    run already under way does not heal, and a deployment refuses to start its work)."""
    disabled = []
    for name in rule_names:
        try:
            events.disable_rule(Name=name)
            disabled.append(name)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
    dynamodb.update_item(
        TableName=table,
        Key={"modelId": {"S": LIVE_POINTER_ID}},
        UpdateExpression="SET #deleting = :now",
        ExpressionAttributeNames={"#deleting": STACK_DELETING_ATTRIBUTE},
        ExpressionAttributeValues={":now": {"S": datetime.now(timezone.utc).isoformat()}},
    )
    return disabled


def clean_up(
    sagemaker: Any,
    sfn: Any,
    dynamodb: Any,
    *,
    table: str,
    endpoint_name: str,
    state_machine_arns: Iterable[str],
    application_autoscaling: Any = None,
    cloudwatch: Any = None,
    events: Any = None,
    dispatch_rule_names: Iterable[str] = (),
) -> dict[str, list[str]]:
    """Stop the dispatcher and the pipeline's executions, then remove the endpoint's autoscaling and
    delete the endpoint, its configs and models. Idempotent."""
    disabled = (
        stop_dispatcher(events, dynamodb, table=table, rule_names=dispatch_rule_names) if events is not None else []
    )
    stopped = running_executions(sfn, state_machine_arns)
    for arn in stopped:
        _ignore_missing(sfn.stop_execution, executionArn=arn, cause="Stack is being deleted")
    models, configs = recorded_names(dynamodb, table)
    deleted: dict[str, list[str]] = {"stoppedExecutions": stopped, "endpoints": [], "endpointConfigs": [], "models": []}
    if events is not None:
        deleted["disabledRules"] = disabled
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
