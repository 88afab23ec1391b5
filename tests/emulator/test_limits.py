"""The harness's service limits (emulator/limits.py), each shown catching a planted defect.

The state machines here are small ones written for the purpose and run on moto's interpreter
with the limits installed, exactly as the pipeline's run in PipelineHarness.
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack

import boto3
import pytest
from moto import mock_aws

from emulator.limits import (
    HISTORY_EVENT_LIMIT,
    LAMBDA_ASYNC_LIMIT_BYTES,
    LAMBDA_SYNC_LIMIT_BYTES,
    STATE_LIMIT_BYTES,
    ServiceLimitExceeded,
    ServiceLimits,
)
from emulator.moto_patches import patch_jsonpath_parse

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/machine"


@pytest.fixture
def moto_sfn():
    with ExitStack() as stack:
        stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
        limits = ServiceLimits().install(stack)
        # As in PipelineHarness: moto's interpreter parses each path once (its serializer's names are
        # looked up once per response for the whole session: tests/conftest.py)
        patch_jsonpath_parse(stack)
        yield boto3.client("stepfunctions", region_name=REGION), limits


def run(sfn, definition: dict, execution_input: dict | None = None, timeout_s: float = 120) -> dict:
    arn = sfn.create_state_machine(name=f"m{time.monotonic_ns()}", definition=json.dumps(definition), roleArn=ROLE)[
        "stateMachineArn"
    ]
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(execution_input or {}))["executionArn"]
    deadline = time.monotonic() + timeout_s
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution did not finish"
        time.sleep(0.2)
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution)
    described["events"] = [e for page in pages for e in page["events"]]
    return described


def caught_task(result_selector: dict | None = None, resource: str = "aws-sdk:dynamodb:getItem") -> dict:
    """A DynamoDB GetItem task whose every error a `States.ALL` catcher sends to `Caught`."""
    task = {
        "Type": "Task",
        "Resource": f"arn:aws:states:::{resource}",
        "Parameters": {"TableName": "t", "Key": {"pk": {"S": "big"}}},
        "ResultPath": "$.item",
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught", "ResultPath": "$.error"}],
        "End": True,
    }
    if result_selector:
        task["ResultSelector"] = result_selector
    return {"StartAt": "Read", "States": {"Read": task, "Caught": {"Type": "Succeed"}}}


def big_item(size: int) -> None:
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName="t", Item={"pk": {"S": "big"}, "data": {"S": "x" * size}})


def test_a_result_over_256_kib_ends_the_execution_even_under_a_states_all_catch(moto_sfn):
    sfn, limits = moto_sfn
    big_item(300 * 1024)  # a 300 KiB task result: AWS fails the state with States.DataLimitExceeded

    described = run(sfn, caught_task())

    # moto alone lets `States.ALL` catch it (the execution would succeed through `Caught`).
    assert described["status"] == "FAILED"
    assert described["error"] == "States.DataLimitExceeded"
    assert "Caught" not in [e.get("stateEnteredEventDetails", {}).get("name") for e in described["events"]]


@pytest.mark.parametrize("resource", ["aws-sdk:dynamodb:getItem", "dynamodb:getItem"])
def test_a_missing_result_selector_path_ends_the_execution_even_under_a_states_all_catch(moto_sfn, resource):
    sfn, limits = moto_sfn
    big_item(10)

    # moto's optimized DynamoDB integration reports it as DynamoDB.AmazonDynamoDBException.
    described = run(sfn, caught_task({"owner.$": "$.Item.owner.S"}, resource))  # no `owner` on the item

    assert (described["status"], described["error"]) == ("FAILED", "States.Runtime")
    (found,) = limits.check_history("planted", described["events"])
    assert (found.kind, found.detail) == ("terminal-error", "States.Runtime in state Read")


def test_a_catcher_that_names_the_error_still_catches_it(moto_sfn):
    sfn, _ = moto_sfn
    big_item(10)
    definition = caught_task({"owner.$": "$.Item.owner.S"})
    definition["States"]["Read"]["Catch"].insert(
        0, {"ErrorEquals": ["States.Runtime"], "Next": "Caught", "ResultPath": "$.error"}
    )

    assert run(sfn, definition)["status"] == "SUCCEEDED"


def test_state_data_over_256_kib_anywhere_in_a_history_is_reported(moto_sfn):
    sfn, limits = moto_sfn
    # Given what moto does not check itself: a Task's parameters that repeat a 100 KiB input
    # three times (AWS: States.DataLimitExceeded, the input after Parameters is over the quota)...
    text = "y" * (100 * 1024)
    described = run(
        sfn,
        {
            "StartAt": "Send",
            "States": {
                "Send": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::aws-sdk:sqs:sendMessage",
                    "Parameters": {"QueueUrl": "q", "MessageBody.$": "States.Format('{}{}{}', $.text, $.text, $.text)"},
                    "ResultPath": None,
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                    "End": True,
                },
                "Caught": {"Type": "Succeed"},
            },
        },
        {"text": text},
    )
    assert described["status"] == "SUCCEEDED"  # moto let it through

    # ...the history check names the state and the field, with the size.
    (found,) = limits.check_history("planted", described["events"])
    assert (found.kind, found.where, found.detail) == ("state-size", "planted", "Send parameters")
    assert found.size > STATE_LIMIT_BYTES
    with pytest.raises(ServiceLimitExceeded, match="Send parameters"):
        limits.raise_if_violated()


def test_an_execution_input_over_256_kib_is_reported(moto_sfn):
    sfn, limits = moto_sfn

    described = run(
        sfn,
        {"StartAt": "Small", "States": {"Small": {"Type": "Pass", "Result": {}, "End": True}}},
        {"text": "y" * STATE_LIMIT_BYTES},
    )

    assert described["status"] == "SUCCEEDED"  # moto let it through; AWS refuses StartExecution
    assert [v.detail for v in limits.check_history("planted", described["events"])] == [
        "ExecutionStarted input",
        "Small input",
    ]


def counting_loop(iterations: int) -> dict:
    """Pass + Choice per iteration: 4 history events each (entered and exited for both)."""
    return {
        "StartAt": "Count",
        "States": {
            "Count": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "Again"},
            "Again": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericLessThan": iterations, "Next": "Count"}],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }


def test_an_execution_past_25000_history_events_fails_and_is_reported(moto_sfn):
    sfn, limits = moto_sfn

    described = run(sfn, counting_loop(HISTORY_EVENT_LIMIT // 4 + 50), {"n": 0})

    assert described["status"] == "FAILED"
    assert "more than 25000 history events" in described["cause"]
    assert len(described["events"]) == HISTORY_EVENT_LIMIT + 1 + 1  # the one refused, then ExecutionFailed
    # The execution ended by the interpreter as a terminal error, and its history is over the limit.
    assert [v.kind for v in limits.check_history("planted", described["events"])] == [
        "terminal-error",
        "history-events",
    ]
    assert any(v.kind == "history-events" and v.size == HISTORY_EVENT_LIMIT + 1 for v in limits.violations)


def test_an_execution_just_under_the_event_limit_passes():
    # A lower limit keeps this control quick (moto writes about 500 events a second); the
    # mechanism is the one the 25,000 test above exercises.
    with ExitStack() as stack:
        stack.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
        limits = ServiceLimits(event_limit=1_000).install(stack)
        sfn = boto3.client("stepfunctions", region_name=REGION)

        described = run(sfn, counting_loop(1_000 // 4 - 2), {"n": 0})

        assert described["status"] == "SUCCEEDED"
        assert 990 < len(described["events"]) <= 1_000
        assert limits.check_history("control", described["events"]) == [] and limits.violations == []


def test_lambda_payload_limits():
    limits = ServiceLimits()
    assert limits.check_lambda_request("f", b"x" * LAMBDA_ASYNC_LIMIT_BYTES, asynchronous=True) is None
    assert limits.check_lambda_request("f", b"x" * (LAMBDA_ASYNC_LIMIT_BYTES + 1), asynchronous=True)
    assert limits.check_lambda_request("f", b"x" * (LAMBDA_ASYNC_LIMIT_BYTES + 1), asynchronous=False) is None
    assert limits.check_lambda_request("f", b"x" * (LAMBDA_SYNC_LIMIT_BYTES + 1), asynchronous=False)
    assert limits.check_lambda_response("f", "x" * (LAMBDA_SYNC_LIMIT_BYTES + 1))
    assert [v.kind for v in limits.violations] == ["lambda-request", "lambda-request", "lambda-response"]
