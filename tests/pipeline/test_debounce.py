"""The quiet-window bookkeeping of the upload listener, on moto's DynamoDB."""

from __future__ import annotations

from datetime import datetime, timezone

import boto3
import pytest
from moto import mock_aws

import debounce  # from lambda/intake (pytest.ini's pythonpath)

T0 = datetime(2026, 11, 25, 10, 0, 0, 250_000, tzinfo=timezone.utc)


@pytest.fixture
def table():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def item(client) -> dict:
    return client.get_item(TableName="state", Key={"pk": {"S": "dataset#doppler"}})["Item"]


def test_window_end_is_rounded_up_to_a_whole_second_with_milliseconds():
    assert debounce.window_end(T0, 120) == "2026-11-25T10:02:01.000Z"
    assert debounce.window_end(T0.replace(microsecond=0), 120) == "2026-11-25T10:02:00.000Z"
    # Compares correctly, as plain strings, with Step Functions' own times.
    assert debounce.window_end(T0, 0) <= "2026-11-25T10:00:01.001Z"
    assert not debounce.window_end(T0, 0) <= "2026-11-25T10:00:00.999Z"


def test_uploads_of_one_burst_share_a_generation_and_push_the_window(table):
    assert debounce.record_upload(table, "state", "doppler", T0, 120) == 1
    assert debounce.record_upload(table, "state", "doppler", T0.replace(second=30), 120) == 1
    assert item(table)["quietUntil"]["S"] == "2026-11-25T10:02:31.000Z"


def test_a_late_event_never_moves_the_window_back(table):
    debounce.record_upload(table, "state", "doppler", T0.replace(minute=5), 120)
    debounce.record_upload(table, "state", "doppler", T0, 120)  # delivered late, out of order
    assert item(table)["quietUntil"]["S"] == "2026-11-25T10:07:01.000Z"


def test_a_closed_window_opens_the_next_generation(table):
    debounce.record_upload(table, "state", "doppler", T0, 120)
    table.update_item(
        TableName="state",
        Key={"pk": {"S": "dataset#doppler"}},
        UpdateExpression="SET active = :f",
        ExpressionAttributeValues={":f": {"BOOL": False}},
    )
    assert debounce.record_upload(table, "state", "doppler", T0.replace(minute=9), 120) == 2


def test_an_invalid_folder_name_is_reported_once(table):
    assert debounce.first_report_of_invalid_name(table, "state", "my dog", T0) is True
    assert debounce.first_report_of_invalid_name(table, "state", "my dog", T0) is False
