"""DynamoDB items <-> plain Python values, and the shape of a generation record.

Low-level clients are used on purpose (the resource layer costs cold-start time); these two
helpers do the attribute-value conversion.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Optional

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from dreambooth_shared.contract import error_code

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

QUEUED, SUCCEEDED, FAILED = "queued", "succeeded", "failed"
TERMINAL = frozenset({SUCCEEDED, FAILED})
# Partition value of the generations table's sparse index of records not yet sent to the endpoint.
PENDING_SHARD = "pending"


# Seeds are 32-bit (the request schema's seed maximum is SEED_LIMIT - 1). Image i of a generation
# uses image_seed(seed, i), which wraps, so every seed the API shows can be sent back.
SEED_LIMIT = 2**32


def image_seed(seed: int, index: int) -> int:
    return (int(seed) + index) % SEED_LIMIT


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [_from_dynamo(v) for v in value]
    return value


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def key(name: str, value: str) -> dict[str, Any]:
    return {name: {"S": value}}


def iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _conditional_update(dynamodb: Any, request: dict[str, Any]) -> Optional[dict[str, Any]]:
    """UpdateItem's answer, or None when its ConditionExpression did not hold."""
    try:
        return dynamodb.update_item(**request)
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return None
        raise


def update_when(dynamodb: Any, **request: Any) -> bool:
    """UpdateItem with a ConditionExpression, nothing read back: whether the condition held."""
    return _conditional_update(dynamodb, request) is not None


def update_if(dynamodb: Any, **request: Any) -> Optional[dict[str, Any]]:
    """UpdateItem with a ConditionExpression: the item as updated, or None when the condition failed."""
    answer = _conditional_update(dynamodb, {"ReturnValues": "ALL_NEW", **request})
    return from_item(answer["Attributes"]) if answer is not None else None
