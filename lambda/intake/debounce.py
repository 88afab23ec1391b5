"""Quiet-window debounce of dataset uploads, kept in one DynamoDB item per dataset.

Every upload pushes the dataset's `quietUntil` forward (it never moves back, so retried or
out-of-order events cannot shorten the window) and makes sure one "debounce" execution of
the training state machine is running for the dataset. That execution has a deterministic
name, `<dataset>-<generation>`: a retried or duplicated event asks to start the same name
again, which Step Functions refuses, so one burst of uploads gives one execution. The
execution waits until `quietUntil`, and ends the generation (`active = false`) only if
`quietUntil` has not moved meanwhile and has really passed; uploads after that open the next
generation.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.exceptions import ClientError

from dreambooth_shared.contract import DATASET_ITEM_PREFIX, error_code

ITEM_PREFIX = DATASET_ITEM_PREFIX
INVALID_NAME_PREFIX = "invalid-name#"


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def window_end(now: datetime, quiet_window_s: int) -> str:
    """`now + window`, rounded up to a whole second and written with `.000Z`.

    Whole seconds: a Wait state's timestamp is honoured to the second. The `.000` keeps plain
    string comparison right against Step Functions' own times ("...T10:00:05.123Z").
    """
    end = now.astimezone(timezone.utc) + timedelta(seconds=quiet_window_s)
    if end.microsecond:
        end = end.replace(microsecond=0) + timedelta(seconds=1)
    return end.strftime("%Y-%m-%dT%H:%M:%S") + ".000Z"


def record_upload(dynamodb: Any, table: str, dataset: str, now: datetime, quiet_window_s: int) -> int:
    """Push the quiet window forward and return the generation that covers this upload."""
    key = {"pk": {"S": ITEM_PREFIX + dataset}}
    until = window_end(now, quiet_window_s)
    try:
        dynamodb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET quietUntil = :until, dataset = :dataset",
            ConditionExpression="attribute_not_exists(quietUntil) OR quietUntil < :until",
            ExpressionAttributeValues={":until": {"S": until}, ":dataset": {"S": dataset}},
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise  # a later upload already pushed the window further: nothing to do
    try:
        response = dynamodb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET active = :true, generation = if_not_exists(generation, :zero) + :one",
            ConditionExpression="attribute_not_exists(active) OR active = :false",
            ExpressionAttributeValues={
                ":true": {"BOOL": True},
                ":false": {"BOOL": False},
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["generation"]["N"])
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise
    # A generation is already open: it covers this upload, because its execution re-reads
    # quietUntil before it closes.
    item = dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
    return int(item["generation"]["N"])


def execution_name(dataset: str, generation: int) -> str:
    return f"{dataset}-{generation}"


def start_debounce(dynamodb: Any, sfn: Any, table: str, state_machine_arn: str, dataset: str, generation: int) -> str:
    """Make sure the generation's execution runs. Returns "started", "covered" or "restarted".

    "covered": the execution already runs (a duplicate or later upload of the same burst).
    "restarted": the generation's execution ended without closing its window (stopped by an
    operator, failed early); the next generation is opened so that the dataset is not stuck.
    """
    if _start(sfn, state_machine_arn, dataset, generation):
        return "started"
    execution_arn = (
        state_machine_arn.replace(":stateMachine:", ":execution:") + ":" + execution_name(dataset, generation)
    )
    if sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING":
        return "covered"
    try:
        dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": ITEM_PREFIX + dataset}},
            UpdateExpression="SET active = :true, generation = :next",
            ConditionExpression="generation = :current",
            ExpressionAttributeValues={
                ":true": {"BOOL": True},
                ":next": {"N": str(generation + 1)},
                ":current": {"N": str(generation)},
            },
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise  # another upload opened it first; starting it again below is harmless
    _start(sfn, state_machine_arn, dataset, generation + 1)
    return "restarted"


def _start(sfn: Any, state_machine_arn: str, dataset: str, generation: int) -> bool:
    """StartExecution; False when that name exists and is not a running twin (same input)."""
    try:
        sfn.start_execution(
            stateMachineArn=state_machine_arn,
            name=execution_name(dataset, generation),
            input=json.dumps({"dataset": dataset, "generation": generation, "extensions": {"count": 0}}),
        )
        return True
    except ClientError as error:
        if error_code(error) == "ExecutionAlreadyExists":
            return False
        raise


def first_report_of_invalid_name(dynamodb: Any, table: str, name: str, now: datetime) -> bool:
    """True once per bad folder name, so a 100-file upload sends one notification, not 100."""
    try:
        dynamodb.put_item(
            TableName=table,
            Item={"pk": {"S": INVALID_NAME_PREFIX + name[:900]}, "reportedAt": {"S": iso(now)}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        return True
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
