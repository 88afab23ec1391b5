"""Wake a deployment waiting for its endpoint as soon as SageMaker reports a state change.

The deploy state machine parks a task token (`park`); SageMaker's "Endpoint State Change" event
hands it back (`wake`). The state machine also re-checks DescribeEndpoint whenever its wait
times out (every `endpointPollSeconds`), so a lost event costs one poll interval, not the
deployment.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from botocore.exceptions import ClientError

WAITER_PREFIX = "endpoint-waiter#"
# Statuses after which the deployment has something to decide.
SETTLED = ("InService", "Failed", "OutOfService")
# Answers of SendTaskSuccess for a token nobody waits for any more: nothing to do.
_GONE = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")


def park(dynamodb: Any, sagemaker: Any, sfn: Any, *, table: str, endpoint: str, token: str) -> bool:
    """Store the token; wake it at once if the endpoint has already settled. True if woken."""
    dynamodb.put_item(TableName=table, Item={"pk": {"S": WAITER_PREFIX + endpoint}, "token": {"S": token}})
    status = _status(sagemaker, endpoint)
    if status in SETTLED:  # the event may have come before the token was stored
        return _send(sfn, token, status)
    return False


def wake(dynamodb: Any, sfn: Any, *, table: str, endpoint: str, status: str) -> bool:
    """Hand the parked token back when the endpoint settled. True if a deployment was woken."""
    if status not in SETTLED:
        return False
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": WAITER_PREFIX + endpoint}},
                             ConsistentRead=True).get("Item")
    if not item:
        return False
    return _send(sfn, item["token"]["S"], status)


def _status(sagemaker: Any, endpoint: str) -> Optional[str]:
    try:
        return sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
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
