"""Wake a deployment waiting for its endpoint as soon as SageMaker reports a state change.

The deploy state machine parks a task token (`park`); SageMaker's "Endpoint State Change" event
hands it back (`wake`). The state machine also re-checks DescribeEndpoint whenever its wait
times out (every `endpointPollSeconds`), so a lost event costs one poll interval, not the
deployment.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Callable, Mapping, Optional

from botocore.exceptions import ClientError

from dreambooth_shared.contract import (
    ENDPOINT_WAITER_PREFIX,
    METRIC_ENDPOINT_IN_SERVICE,
    METRIC_ENDPOINT_TRANSITION_MINUTES,
)

WAITER_PREFIX = ENDPOINT_WAITER_PREFIX
# Statuses after which the deployment has something to decide.
SETTLED = ("InService", "Failed", "OutOfService")
# Statuses of an endpoint on its way somewhere: a deployment that sees one for long is stuck.
TRANSITIONING = ("Creating", "Updating", "SystemUpdating")
# Custom metrics (namespace and `service` dimension from Powertools' environment); the
# Monitoring construct (stacks/monitoring/construct.py) charts and alarms on these names.
METRIC_IN_SERVICE = METRIC_ENDPOINT_IN_SERVICE
METRIC_TRANSITION_MINUTES = METRIC_ENDPOINT_TRANSITION_MINUTES
# Answers of SendTaskSuccess for a token nobody waits for any more: nothing to do.
_GONE = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")


def park(
    dynamodb: Any,
    sagemaker: Any,
    sfn: Any,
    *,
    table: str,
    endpoint: str,
    token: str,
    on_described: Optional[Callable[[Mapping[str, Any]], None]] = None,
) -> bool:
    """Store the token; wake it at once if the endpoint has already settled. True if woken.

    `on_described` receives the DescribeEndpoint answer (for metrics), when there is one.
    """
    dynamodb.put_item(TableName=table, Item={"pk": {"S": WAITER_PREFIX + endpoint}, "token": {"S": token}})
    description = _describe(sagemaker, endpoint)
    if description is not None and on_described is not None:
        on_described(description)
    status = description["EndpointStatus"] if description else None
    if status in SETTLED:  # the event may have come before the token was stored
        return _send(sfn, token, status)
    return False


def wake(dynamodb: Any, sfn: Any, *, table: str, endpoint: str, status: str) -> bool:
    """Hand the parked token back when the endpoint settled. True if a deployment was woken."""
    if status not in SETTLED:
        return False
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": WAITER_PREFIX + endpoint}}, ConsistentRead=True).get(
        "Item"
    )
    if not item:
        return False
    return _send(sfn, item["token"]["S"], status)


def in_service(status: str) -> int:
    """The EndpointInService metric's value: 1 InService, 0 anything else."""
    return 1 if status == "InService" else 0


def minutes_in_transition(description: Mapping[str, Any], now: datetime) -> Optional[float]:
    """Minutes since the endpoint entered Creating/Updating (its LastModifiedTime); None otherwise."""
    if description.get("EndpointStatus") not in TRANSITIONING:
        return None
    since = description.get("LastModifiedTime") or description.get("CreationTime")
    if not isinstance(since, datetime):
        return None
    return round(max(0.0, (now - since).total_seconds() / 60), 2)


def _describe(sagemaker: Any, endpoint: str) -> Optional[dict[str, Any]]:
    try:
        return sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError:
        return None


def _send(sfn: Any, token: str, status: str) -> bool:
    try:
        sfn.send_task_success(taskToken=token, output=json.dumps({"status": status}))
        return True
    except ClientError as error:
        if error.response["Error"]["Code"] in _GONE:
            return False
        raise
