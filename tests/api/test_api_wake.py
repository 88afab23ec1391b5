"""Idle shutdown seen from the API: last use recorded, a sleeping endpoint woken exactly once (moto)."""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest

from tests.api.conftest import ACCOUNT, EPISODE, REGION, REGISTRY_TABLE, create_endpoint, put_to_sleep

MODEL = "dog-20261120100000"
DEPLOY_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:test-deploy"
REQUEST = {"prompt": "a Doppler dog on a beach"}


def pointer() -> dict:
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=REGISTRY_TABLE, Key={"modelId": {"S": "__live__"}}, ConsistentRead=True)["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def executions() -> list[dict]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    found = sfn.list_executions(stateMachineArn=DEPLOY_ARN)["executions"]
    return [{**e, "input": json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])}
            for e in found]


def generation_count(harness) -> int:
    from tests.api.conftest import GENERATIONS_TABLE

    return harness.ddb.scan(TableName=GENERATIONS_TABLE, Select="COUNT")["Count"]


def test_a_generation_request_records_the_last_use_on_the_live_pointer(harness):
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    harness.queue_images(1)
    answer = harness.api.call("POST", "/generations", REQUEST)
    assert answer.status == 202, answer.text
    # recorded just before the generation itself (same clock, milliseconds apart)
    before = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 60))
    assert before <= pointer()["lastUsedAt"] <= answer.json()["created_at"]
    assert harness.api.call("GET", "/status").json()["endpoint"]["last_used_at"] == pointer()["lastUsedAt"]


def test_no_live_model_creates_no_pointer(harness):
    answer = harness.api.call("POST", "/generations", REQUEST)
    assert answer.status == 409
    assert "Item" not in harness.ddb.get_item(TableName=REGISTRY_TABLE, Key={"modelId": {"S": "__live__"}})


def test_requests_while_asleep_get_503_and_start_exactly_one_wake_up(harness):
    put_to_sleep(harness)
    # When ten requests arrive one after the other while the endpoint sleeps
    answers = [harness.api.call("POST", "/generations", REQUEST) for _ in range(10)]
    # Then each is told to come back, with the reason, and none is recorded
    for answer in answers:
        assert answer.status == 503 and answer.headers["Retry-After"] == "60"
        error = answer.json()["error"]
        assert error["code"] == "EndpointWaking" and "waking up" in error["message"]
    assert "is now waking up" in answers[0].json()["error"]["message"]
    assert generation_count(harness) == 0 and not harness.invocations
    # And one wake-up of the same model runs, named after the sleep episode
    (started,) = executions()
    assert started["name"] == f"wake-{EPISODE}-1"
    assert started["input"] == {"modelId": MODEL, "wake": True}
    state = pointer()
    assert (state["endpointState"], state["wakeAttempt"], state["liveModelId"]) == ("waking", "1", MODEL)
    status = harness.api.call("GET", "/status").json()["endpoint"]
    assert status["state"] == "waking" and status["asleep_since"] == "2026-11-25T09:30:00.123Z"


def test_concurrent_requests_that_all_saw_the_endpoint_asleep_start_one_wake_up(harness):
    # Given twenty requests that all read the pointer while it still said "asleep"
    put_to_sleep(harness)
    generations = harness.api_module.generations
    snapshot = generations.wakeup.touch()
    barrier = threading.Barrier(20)
    outcomes: list[str] = []

    def request() -> None:
        barrier.wait()
        try:
            generations.wakeup.wake(dict(snapshot))
        except Exception as error:  # noqa: BLE001 - every outcome is recorded and checked
            outcomes.append(getattr(error, "code", repr(error)))

    threads = [threading.Thread(target=request) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every one is answered EndpointWaking, and only one wake-up was started
    assert outcomes == ["EndpointWaking"] * 20
    assert len(executions()) == 1 and pointer()["wakeAttempt"] == "1"


def test_a_failed_wake_up_is_shown_and_the_next_request_tries_again(harness):
    put_to_sleep(harness, state="wake_failed", attempt=1,
                 wakeFailureReason={"S": "endpoint DreamBoothPipeline-sd failed: CapacityError"})
    status = harness.api.call("GET", "/status").json()["endpoint"]
    assert status["state"] == "asleep"
    assert status["wake_failure_reason"] == "endpoint DreamBoothPipeline-sd failed: CapacityError"

    answer = harness.api.call("POST", "/generations", REQUEST)
    assert answer.status == 503 and answer.json()["error"]["code"] == "EndpointWaking"
    (started,) = executions()
    assert started["name"] == f"wake-{EPISODE}-2"
    assert pointer()["endpointState"] == "waking"


@pytest.mark.parametrize("requested_at, starts", [("2999-01-01T00:00:00.000Z", 0), ("2000-01-01T00:00:00.000Z", 1)])
def test_a_wake_up_in_progress_is_not_started_again_unless_it_is_stale(harness, requested_at, starts):
    put_to_sleep(harness, state="waking", attempt=1, wakeRequestedAt={"S": requested_at})
    answer = harness.api.call("POST", "/generations", REQUEST)
    assert answer.status == 503 and answer.json()["error"]["code"] == "EndpointWaking"
    assert len(executions()) == starts


def test_a_wake_up_that_cannot_be_started_is_handed_back_for_the_next_request(harness, monkeypatch):
    put_to_sleep(harness)
    generations = harness.api_module.generations
    from botocore.exceptions import ClientError

    def refuse(**_):
        raise ClientError({"Error": {"Code": "StateMachineDoesNotExist", "Message": "gone"}}, "StartExecution")

    monkeypatch.setattr(generations.clients.stepfunctions, "start_execution", refuse)
    answer = harness.api.call("POST", "/generations", REQUEST)
    assert answer.status == 503 and answer.headers["Retry-After"] == "5"
    assert "StateMachineDoesNotExist" in answer.json()["error"]["message"]
    assert pointer()["endpointState"] == "asleep"  # the next request claims attempt 2
    monkeypatch.undo()
    harness.api.call("POST", "/generations", REQUEST)
    (started,) = executions()
    assert started["name"] == f"wake-{EPISODE}-2"


def test_an_awake_endpoint_is_not_woken(harness):
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    harness.queue_images(1)
    assert harness.api.call("POST", "/generations", REQUEST).status == 202
    assert executions() == [] and "endpointState" not in pointer()
    assert harness.api.call("GET", "/status").json()["endpoint"]["state"] == "in_service"
