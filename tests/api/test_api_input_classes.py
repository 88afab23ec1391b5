"""The API's answers to odd input (issue 10): text that is not valid Unicode and numbers too long
for int() get a 400 naming the field, every seed a response shows can be sent back, and
POST /models/{id}/retrain starts exactly one retrain of a transiently failed model."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.api.conftest import ACCOUNT, REGION, REGISTRY_TABLE, create_endpoint

MODEL = "dog-20261120100000"
FAILED = "cat-20261121000000"
TRAIN_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:test-train"


@pytest.fixture
def live(harness):
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    return harness


def fields(answer) -> dict[str, str]:
    return {f["field"]: f["message"] for f in answer.json()["error"]["fields"]}


# ---- text and numbers ----


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_a_lone_surrogate_in_a_text_field_is_a_400_naming_the_field(live, field):
    body = (
        '{"prompt": "a dog", "%s": "a photo of a dog \\ud83d"}' % field
        if field != "prompt"
        else '{"prompt": "a photo of a dog \\ud83d"}'
    )
    answer = live.api.call("POST", "/generations", body)
    assert answer.status == 400, answer.text
    assert fields(answer)[field].startswith("is not valid Unicode: it holds a lone surrogate \\ud83d")
    assert live.sent == []  # nothing was recorded or sent to the endpoint


def test_a_lone_surrogate_in_a_field_name_or_model_id_is_a_400_not_a_500(live):
    answer = live.api.call("POST", "/generations", '{"prompt": "a dog", "\\udc00x": 1}')
    assert answer.status == 400 and "\\udc00x" in fields(answer)
    answer = live.api.call("PUT", "/models/live", '{"model_id": "\\ud800"}')
    assert answer.status == 400 and "model_id" in fields(answer)


@pytest.mark.parametrize(
    "literal",
    ["9" * 5000, "-" + "9" * 4400, "1" + "0" * 400 + ".0", "1e400"],
    ids=["5000-digits", "minus-4400-digits", "401-digit-float", "1e400"],
)
def test_numbers_of_any_length_are_a_400_naming_the_field(live, literal):
    answer = live.api.call("POST", "/generations", '{"prompt": "a dog", "seed": %s}' % literal)
    assert answer.status == 400, answer.text
    assert "seed" in fields(answer)


def test_deep_nesting_is_a_400(live):
    answer = live.api.call("POST", "/generations", '{"prompt": "a dog", "x": ' + "[" * 50000 + "]" * 50000 + "}")
    assert answer.status == 400


# ---- 8. what the API returns it accepts back ----


def test_every_seed_a_response_shows_can_be_sent_back(live):
    live.queue_images(4)
    answer = live.api.call("POST", "/generations", {"prompt": "a dog", "seed": 2**32 - 2, "num_images": 4, "wait": 10})
    assert answer.status == 200, answer.text
    seeds = [image["seed"] for image in answer.json()["images"]]
    assert seeds == [2**32 - 2, 2**32 - 1, 0, 1]
    for seed in seeds:
        live.queue_images(1)
        again = live.api.call("POST", "/generations", {"prompt": "a dog", "seed": seed, "wait": 10})
        assert again.status == 200, again.text
        assert [image["seed"] for image in again.json()["images"]] == [seed]


def test_the_seed_maximum_of_the_document_is_the_seed_space(api_module):
    seed = api_module.spec.request_schema("GenerationRequest")["properties"]["seed"]
    # The wrap of image seeds (tested above) is at 2**32: exactly one past the largest seed accepted.
    assert seed["minimum"] == 0 and seed["maximum"] == 2**32 - 1


# ---- 6. POST /models/{id}/retrain ----


def executions():
    return boto3.client("stepfunctions", region_name=REGION).list_executions(stateMachineArn=TRAIN_ARN)["executions"]


def test_a_retryable_failure_is_retrained_once_whatever_the_number_of_requests(live):
    live.put_model(
        FAILED, status="failed", failureReason={"S": "training failed: CapacityError: none"}, retryable={"BOOL": True}
    )
    first = live.api.call("POST", f"/models/{FAILED}/retrain")
    assert first.status == 202, first.text
    assert first.json()["training_job_name"] == f"{FAILED}-r1" and first.json()["state"] == "started"
    again = live.api.call("POST", f"/models/{FAILED}/retrain")
    assert again.status == 409 and "already being retrained" in again.json()["error"]["message"]
    (execution,) = executions()
    assert execution["name"] == f"{FAILED}_retrain_1"
    described = boto3.client("stepfunctions", region_name=REGION).describe_execution(
        executionArn=execution["executionArn"]
    )
    assert json.loads(described["input"]) == {"dataset": "cat", "retrain": {"modelId": FAILED, "attempt": 1}}
    model = live.api.call("GET", f"/models/{FAILED}").json()
    assert model["status"] == "training" and model["retrain_count"] == 1 and "failure_reason" not in model


def test_a_retrain_whose_execution_cannot_start_leaves_the_model_retryable(live, monkeypatch):
    from botocore.exceptions import ClientError

    live.put_model(
        FAILED, status="failed", failureReason={"S": "training failed: InternalServerError"}, retryable={"BOOL": True}
    )
    client = live.api_module.registry.clients.stepfunctions

    def refuse(**_):
        raise ClientError({"Error": {"Code": "ExecutionLimitExceeded", "Message": "too many"}}, "StartExecution")

    monkeypatch.setattr(client, "start_execution", refuse)
    answer = live.api.call("POST", f"/models/{FAILED}/retrain")
    assert answer.status == 503 and "ExecutionLimitExceeded" in answer.json()["error"]["message"]
    item = live.ddb.get_item(TableName=REGISTRY_TABLE, Key={"modelId": {"S": FAILED}})["Item"]
    assert item["status"]["S"] == "failed" and item["retryable"]["BOOL"] is True
    assert item["failureReason"]["S"] == "training failed: InternalServerError"
    monkeypatch.undo()
    assert live.api.call("POST", f"/models/{FAILED}/retrain").status == 202


@pytest.mark.parametrize(
    "status, extra, message",
    [
        ("failed", {"failureReason": {"S": "invalid dataset: 2 usable images"}}, "retried only after it changes"),
        (
            "failed",
            {"failureReason": {"S": "training failed: AlgorithmError"}, "retryable": {"BOOL": False}},
            "a retry would not fix",
        ),
        ("retired", {}, "only a failed training can be retrained"),
    ],
)
def test_models_a_retrain_cannot_help_are_refused_with_the_way_out(live, status, extra, message):
    live.put_model(FAILED, status=status, **extra)
    answer = live.api.call("POST", f"/models/{FAILED}/retrain")
    assert answer.status == 409 and message in answer.json()["error"]["message"]
    assert executions() == []


def test_retrain_of_an_unknown_or_odd_model_id_is_a_404(live):
    for model_id in ("nope-20260101000000", "__live__", "%ED%A0%BD"):
        assert live.api.call("POST", f"/models/{model_id}/retrain").status == 404


def test_the_retrain_execution_name_is_the_pipelines_and_never_a_debounce_name(api_module):
    from scripts.cli.dataset_upload import rules
    from stacks.training.workflow import RETRAIN_EXECUTION_SUFFIX

    assert type(api_module.registry).retrain.__globals__["RETRAIN_EXECUTION_SUFFIX"] == RETRAIN_EXECUTION_SUFFIX
    # Debounce executions are <dataset>-<n>, and no dataset name holds the suffix's "_"
    assert rules().dataset_name_problem("dog" + RETRAIN_EXECUTION_SUFFIX.rstrip("_")) is not None
