"""The API, result and dispatcher handlers against moto, through the API Gateway adapter."""

from __future__ import annotations

import base64
import dataclasses
import json
import time

import boto3
import pytest
import requests
from moto.sagemaker.models import sagemaker_backends

from emulator.api_gateway import lambda_context
from emulator.lambda_runtime import API_CODE
from tests.api.conftest import ACCOUNT, BUCKET, ENDPOINT, REGION, create_endpoint

MODEL = "dog-20261120100000"


@pytest.fixture
def live(harness):
    """A live model on an in-service endpoint."""
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    return harness


def set_endpoint_status(status: str) -> None:
    # moto marks endpoints InService at once; tests of the other states set it on moto's record.
    sagemaker_backends[ACCOUNT][REGION].endpoints[ENDPOINT].endpoint_status = status


def field_errors(answer) -> dict[str, str]:
    return {f["field"]: f["message"] for f in answer.json()["error"]["fields"]}


# --- POST /generations -------------------------------------------------------------------------


def test_generation_with_wait_returns_the_finished_result_and_stores_jpegs(live):
    # Given two canned JPEG answers from the endpoint
    images = live.queue_images(2)
    # When a client asks for two images and waits
    answer = live.api.call(
        "POST",
        "/generations",
        {
            "prompt": "a Doppler dog on a beach",
            "num_images": 2,
            "seed": 42,
            "steps": 30,
            "width": 640,
            "height": 384,
            "negative_prompt": "blurry",
            "wait": 10,
        },
    )
    # Then the finished generation comes back directly
    assert answer.status == 200, answer.text
    body = answer.json()
    assert body["status"] == "succeeded" and body["model_id"] == MODEL
    assert body["parameters"] == {
        "num_images": 2,
        "width": 640,
        "height": 384,
        "steps": 30,
        "guidance_scale": 7.5,
        "seed": 42,
        "negative_prompt": "blurry",
    }
    assert [i["seed"] for i in body["images"]] == [42, 43]
    assert set(body["timings"]) == {"total_ms"}
    # And each image went to generated/<id>/ as the JPEG the model returned
    s3 = boto3.client("s3", region_name=REGION)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="generated/")["Contents"])
    assert keys == [f"generated/{body['id']}/0.jpg", f"generated/{body['id']}/1.jpg"]
    stored = [s3.get_object(Bucket=BUCKET, Key=k) for k in keys]
    assert [o["Body"].read() for o in stored] == images
    assert {o["ContentType"] for o in stored} == {"image/jpeg"}
    # And the presigned URLs serve those bytes
    assert requests.get(body["images"][1]["url"], timeout=5).content == images[1]
    # And every asynchronous request asked for base64 JPEG, one image each, seed + i, from its request object
    sent = live.sent
    assert [r["headers"]["x-amzn-sagemaker-accept"] for r in sent] == ["application/json;jpeg"] * 2
    assert {r["headers"]["x-amzn-sagemaker-content-type"] for r in sent} == {"application/json"}
    assert [r["inference_id"] for r in sent] == [f"{body['id']}-0-2", f"{body['id']}-1-2"]
    assert {
        (r["headers"]["x-amzn-sagemaker-requestttlseconds"], r["headers"]["x-amzn-sagemaker-invocationtimeoutseconds"])
        for r in sent
    } == {("21600", "3600")}
    assert [r["headers"]["x-amzn-sagemaker-inputlocation"] for r in sent] == [
        f"s3://{BUCKET}/inference/requests/{body['id']}/{i}.json" for i in (0, 1)
    ]
    payloads = [r["payload"] for r in sent]
    assert [p["seed"] for p in payloads] == [42, 43]
    assert {
        (p["num_images_per_prompt"], p["width"], p["height"], p["num_inference_steps"], p["negative_prompt"])
        for p in payloads
    } == {(1, 640, 384, 30, "blurry")}


def test_generation_without_wait_answers_202_at_once_and_finishes_with_the_notice(live):
    live.mode = "defer"
    live.queue_images(1)
    answer = live.api.call("POST", "/generations", {"prompt": "a dog"})
    assert answer.status == 202
    body = answer.json()
    assert body["status"] == "queued" and body["images"] == []
    assert body["queue_reason"] == "at SageMaker: running, or waiting for a free instance"
    assert answer.headers["Location"] == f"/generations/{body['id']}"
    assert [r["inference_id"] for r in live.sent] == [f"{body['id']}-0-1"]
    # The record exists with a TTL before SageMaker answers
    item = live.generation_item(body["id"])
    assert int(item["expiresAt"]["N"]) - time.time() == pytest.approx(7 * 86400, abs=60)
    assert live.api.call("GET", f"/generations/{body['id']}").json()["status"] == "queued"
    # When SageMaker's success notice comes, GET shows the result
    assert live.answer_deferred() == [{"outcomes": ["succeeded"]}]
    done = live.api.call("GET", f"/generations/{body['id']}").json()
    assert done["status"] == "succeeded" and len(done["images"]) == 1 and done["model_id"] == MODEL
    assert 0 <= body["parameters"]["seed"] < 2**32 and done["parameters"]["seed"] == body["parameters"]["seed"]


class VirtualTime:
    """The handler's clock and sleep on virtual time: a sleep advances it at once and is recorded."""

    def __init__(self) -> None:
        self.now = time.time()
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def virtual_time(live, monkeypatch):
    virtual = VirtualTime()
    monkeypatch.setattr(live.api_module.generations, "clock", virtual.clock)
    monkeypatch.setattr(live.api_module.generations, "sleep", virtual.sleep)
    return virtual


def test_wait_gives_up_with_202_when_the_result_is_not_ready(live, virtual_time):
    live.mode = "defer"
    answer = live.api.call("POST", "/generations", {"prompt": "a dog", "wait": 1})
    assert answer.status == 202 and answer.json()["status"] == "queued"
    # it polled the record until the second asked for was over, and no longer
    assert len(virtual_time.sleeps) > 1 and sum(virtual_time.sleeps) == pytest.approx(1)


def test_wait_is_capped_by_the_configured_maximum(live, virtual_time):
    live.mode = "defer"
    generations = live.api_module.generations
    generations.settings = dataclasses.replace(generations.settings, max_wait_s=1)
    answer = live.api.call("POST", "/generations", {"prompt": "a dog", "wait": 25})
    assert answer.status == 202
    assert sum(virtual_time.sleeps) == pytest.approx(1)


def test_model_error_becomes_a_failed_generation_with_the_reason(live):
    live.queue_model_error("CUDA out of memory")
    answer = live.api.call("POST", "/generations", {"prompt": "a dog", "wait": 5})
    assert answer.status == 200
    body = answer.json()
    assert body["status"] == "failed"
    assert "the model failed" in body["error"] and "CUDA out of memory" in body["error"]
    assert body["images"] == []


@pytest.mark.parametrize(
    "model_body, reason",
    [
        (json.dumps({"generated_images": [[[[0, 0, 0]]]]}), "not a base64 string"),
        ("<html>oops</html>", "not JSON"),
        (json.dumps({"predictions": []}), "no generated_images"),
        (json.dumps({"generated_images": [base64.b64encode(b"\x89PNG\r\n\x1a\n....").decode()]}), "not a JPEG"),
    ],
)
def test_unexpected_model_output_fails_the_generation(live, model_body, reason):
    live.queue_results(model_body)
    body = live.api.call("POST", "/generations", {"prompt": "a dog", "wait": 5}).json()
    assert body["status"] == "failed" and reason in body["error"]


def test_an_error_on_a_later_image_fails_the_generation_and_a_late_success_changes_nothing(live):
    live.mode = "defer"
    live.queue_images(1)
    live.queue_model_error("endpoint restarted")
    live.queue_images(1)
    generation_id = live.api.call("POST", "/generations", {"prompt": "a dog", "num_images": 3}).json()["id"]
    assert [r["outcomes"] for r in live.answer_deferred()] == [["queued"], ["failed"], ["ignored"]]
    body = live.api.call("GET", f"/generations/{generation_id}").json()
    assert body["status"] == "failed" and "endpoint restarted" in body["error"]


def test_a_notice_delivered_twice_counts_once(live):
    live.mode = "defer"
    generation_id = live.api.call("POST", "/generations", {"prompt": "a dog", "num_images": 2}).json()["id"]
    first, second = live.deferred
    live.answer_deferred()
    # SNS delivers at least once: the same notices again
    assert [live.deliver(n)["outcomes"] for n in list(live.notices)] == [["ignored"], ["ignored"]]
    body = live.api.call("GET", f"/generations/{generation_id}").json()
    assert body["status"] == "succeeded" and len(body["images"]) == 2
    assert len(live.sent) == 2  # each image sent to the endpoint once


def test_a_request_that_never_gets_a_notice_reads_as_failed(live, monkeypatch):
    live.mode = "defer"
    generation_id = live.api.call("POST", "/generations", {"prompt": "a dog"}).json()["id"]
    # Past the request TTL + invocation timeout (+ grace), no notice can come any more
    later = time.time() + 21600 + 3600 + 301
    monkeypatch.setattr(live.api_module.generations, "clock", lambda: later)
    body = live.api.call("GET", f"/generations/{generation_id}").json()
    assert body["status"] == "failed" and "no result from SageMaker within 425 min" in body["error"]


def test_a_request_queued_on_an_endpoint_deleted_since_reads_as_failed(live):
    live.mode = "defer"
    generation_id = live.api.call("POST", "/generations", {"prompt": "a dog"}).json()["id"]
    # The endpoint was deleted (its queue with it) and re-created after the request was sent
    live.ddb.update_item(
        TableName="test-generations",
        Key={"generationId": {"S": generation_id}},
        UpdateExpression="SET submittedAt = :t",
        ExpressionAttributeValues={":t": {"S": "2026-01-01T00:00:00.000Z"}},
    )
    body = live.api.call("GET", f"/generations/{generation_id}").json()
    assert body["status"] == "failed" and "endpoint was deleted while the request was queued" in body["error"]


def test_a_notice_that_is_not_ours_is_ignored(live):
    assert live.deliver({"inferenceId": "something-else", "invocationStatus": "Completed"}) == {"outcomes": ["ignored"]}


def test_no_model_trained_yet_is_409(harness):
    answer = harness.api.call("POST", "/generations", {"prompt": "a dog"})
    assert answer.status == 409
    assert "no model has been trained" in answer.json()["error"]["message"]


def test_unknown_model_is_404_and_a_model_that_is_not_live_is_409(live):
    assert live.api.call("POST", "/generations", {"prompt": "a", "model_id": "cat-20260101000000"}).status == 404
    live.put_model("cat-20260101000000", status="retired")
    answer = live.api.call("POST", "/generations", {"prompt": "a", "model_id": "cat-20260101000000"})
    assert answer.status == 409 and "PUT /models/live" in answer.json()["error"]["message"]
    live.mode = "defer"
    assert live.api.call("POST", "/generations", {"prompt": "a", "model_id": MODEL}).status == 202


def test_a_missing_endpoint_queues_the_request_and_starts_its_recreation(harness):
    harness.live_model(MODEL)
    answer = harness.api.call("POST", "/generations", {"prompt": "a dog"})
    assert answer.status == 202
    body = answer.json()
    assert body["status"] == "queued" and "being re-created" in body["queue_reason"]
    assert harness.sent == []
    (item,) = harness.ddb.scan(TableName="test-generations")["Items"]
    assert item["pendingShard"]["S"] == "pending" and item["submitted"]["N"] == "0"
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    (execution,) = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert execution["name"].startswith("heal-")
    assert json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"]) == {"modelId": MODEL}
    # When the endpoint is back, the dispatcher sends the pending request, once
    create_endpoint(MODEL)
    assert harness.dispatch_module.lambda_handler({}, lambda_context("dispatch"))["sent"] == 1
    assert harness.dispatch_module.lambda_handler({}, lambda_context("dispatch"))["sent"] == 0
    assert [r["inference_id"] for r in harness.sent] == [f"{body['id']}-0-1"]
    assert harness.api.call("GET", f"/generations/{body['id']}").json()["status"] == "succeeded"


@pytest.mark.parametrize(
    "status, reason",
    [
        ("Creating", "the endpoint is being created"),
        ("Failed", "being re-created"),
    ],
)
def test_an_endpoint_that_cannot_queue_keeps_the_request_pending_with_the_reason(live, status, reason):
    set_endpoint_status(status)
    answer = live.api.call("POST", "/generations", {"prompt": "a dog"})
    assert answer.status == 202 and reason in answer.json()["queue_reason"]
    assert live.sent == []


def test_an_updating_endpoint_takes_requests(live):
    live.mode = "defer"
    set_endpoint_status("Updating")
    answer = live.api.call("POST", "/generations", {"prompt": "a dog"})
    assert answer.status == 202 and "switching models" in answer.json()["queue_reason"]
    assert len(live.sent) == 1


def test_at_zero_instances_the_reason_says_an_instance_is_starting(live):
    live.mode = "defer"
    sagemaker_backends[ACCOUNT][REGION].endpoints[ENDPOINT].production_variants[0]["CurrentInstanceCount"] = 0
    answer = live.api.call("POST", "/generations", {"prompt": "a dog"})
    assert answer.json()["queue_reason"] == (
        "starting an instance, usually up to 10 minutes (the endpoint scaled to zero after 10 minutes without work)"
    )


def test_response_stays_small_whatever_num_images_is(live):
    live.queue_images(4)
    answer = live.api.call(
        "POST", "/generations", {"prompt": "a dog", "num_images": 4, "width": 1024, "height": 1024, "wait": 10}
    )
    assert answer.json()["status"] == "succeeded" and len(answer.json()["images"]) == 4
    assert len(answer.text.encode()) < 16 * 1024  # URLs, never image bytes


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, expected",
    [
        ({}, {"prompt": "is required"}),
        ({"prompt": "   "}, {"prompt": "must match the pattern \\S"}),
        ({"prompt": "a", "num_images": 5}, {"num_images": "must be at most 4"}),
        ({"prompt": "a", "num_images": 0}, {"num_images": "must be at least 1"}),
        ({"prompt": "a", "width": 500}, {"width": "must be a multiple of 8"}),
        ({"prompt": "a", "height": 2048}, {"height": "must be at most 1024"}),
        ({"prompt": "a", "steps": "many"}, {"steps": "must be an integer"}),
        ({"prompt": "a", "num_images": 2.0}, {"num_images": "must be an integer"}),
        ({"prompt": "a", "guidance_scale": True}, {"guidance_scale": "must be a number"}),
        ({"prompt": "a", "wait": 30}, {"wait": "must be at most 25"}),
        ({"prompt": "a", "seed": -1}, {"seed": "must be at least 0"}),
        ({"prompt": "a", "colour": "red"}, {"colour": "is not an allowed field"}),
        (
            {"prompt": 7, "num_images": 9, "model_id": "../etc"},
            {
                "prompt": "must be a string",
                "num_images": "must be at most 4",
                "model_id": "must match the pattern ^[A-Za-z0-9][A-Za-z0-9._-]*$",
            },
        ),
        ([1, 2], {"body": "must be a JSON object"}),
    ],
)
def test_bad_input_gets_400_naming_each_field(live, body, expected):
    answer = live.api.call("POST", "/generations", body)
    assert answer.status == 400
    assert field_errors(answer) == expected
    assert live.sent == [] and live.ddb.scan(TableName="test-generations")["Items"] == []


@pytest.mark.parametrize("raw", ["", "{", "NaN", '{"prompt": "a", "guidance_scale": Infinity}', b"\xff\xfe\x00"])
def test_unparseable_body_is_400(live, raw):
    answer = live.api.call("POST", "/generations", raw)
    assert answer.status == 400 and answer.json()["error"]["fields"][0]["field"] == "body"


def test_unknown_generation_is_404(live):
    assert live.api.call("GET", "/generations/3f1c2a4e-0000-4000-8000-000000000000").status == 404
    assert live.api.call("GET", "/generations/not-a-uuid").status == 404


def test_unexpected_errors_are_500_without_a_trace(live, monkeypatch):
    def boom():
        raise RuntimeError("secret internals /var/task/registry.py line 12")

    monkeypatch.setattr(live.api_module.registry, "list_models", boom)
    answer = live.api.call("GET", "/models")
    assert answer.status == 500
    assert answer.json()["error"]["code"] == "InternalError"
    assert "secret" not in answer.text and "Traceback" not in answer.text and "request_id" in answer.text


# --- models, live switch, status, document -----------------------------------------------------


def test_models_are_listed_newest_first_with_the_live_flag(live):
    live.put_model("cat-20261121000000", status="retired", createdAt={"S": "2026-11-21T00:00:00Z"})
    live.put_model("cow-20261122000000", status="training", createdAt={"S": "2026-11-22T00:00:00Z"})
    body = live.api.call("GET", "/models").json()
    assert [m["model_id"] for m in body["models"]] == ["cow-20261122000000", "cat-20261121000000", MODEL]
    assert [m["live"] for m in body["models"]] == [False, False, True] and body["live_model_id"] == MODEL
    one = live.api.call("GET", f"/models/{MODEL}")
    assert one.status == 200 and one.json()["train_loss"] == pytest.approx(0.123)
    assert live.api.call("GET", "/models/nope-1").status == 404
    assert live.api.call("GET", "/models/__live__").status == 404


def test_switching_the_live_model_runs_the_deployment_state_machine(live):
    live.put_model("cat-20261121000000", status="retired")
    answer = live.api.call("PUT", "/models/live", {"model_id": "cat-20261121000000"})
    assert answer.status == 202 and answer.json()["state"] == "started"
    execution = boto3.client("stepfunctions", region_name=REGION).describe_execution(
        executionArn=answer.json()["execution_arn"]
    )
    assert json.loads(execution["input"]) == {"modelId": "cat-20261121000000"}
    # A second switch while that deployment runs is refused
    again = live.api.call("PUT", "/models/live", {"model_id": MODEL})
    assert again.status == 409 and "already in progress" in again.json()["error"]["message"]


def test_switching_to_the_model_already_live_starts_nothing(live):
    answer = live.api.call("PUT", "/models/live", {"model_id": MODEL})
    assert (answer.status, answer.json()["state"]) == (200, "already_live")
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    assert sfn.list_executions(stateMachineArn=machine)["executions"] == []


@pytest.mark.parametrize(
    "body, status",
    [
        ({"model_id": "ghost-20260101000000"}, 404),
        ({"model_id": "cow-20261122000000"}, 409),
        ({"modelId": "x"}, 400),
        ({}, 400),
    ],
)
def test_bad_live_switches_are_refused(live, body, status):
    live.put_model("cow-20261122000000", status="training")
    assert live.api.call("PUT", "/models/live", body).status == status


def test_status_reports_endpoint_training_and_live_model(harness):
    body = harness.api.call("GET", "/status").json()
    assert body == {"endpoint": {"name": ENDPOINT, "state": "none"}, "live_model": None, "training": []}
    harness.live_model(MODEL)
    harness.put_model("cow-20261122000000", status="training")
    create_endpoint(MODEL)
    set_endpoint_status("Updating")
    body = harness.api.call("GET", "/status").json()
    assert body["endpoint"]["state"] == "updating" and body["endpoint"]["sagemaker_status"] == "Updating"
    assert body["live_model"]["model_id"] == MODEL
    assert [m["model_id"] for m in body["training"]] == ["cow-20261122000000"]


def test_the_committed_openapi_document_is_served(harness):
    answer = harness.api.call("GET", "/openapi.json")
    assert answer.status == 200
    assert answer.text == (API_CODE / "openapi.json").read_text()


def test_unknown_route_is_404_json(harness):
    answer = harness.api.call("DELETE", "/models")
    assert answer.status == 404 and answer.json()["error"]["code"] == "NotFound"


def test_answers_carry_cors_headers_for_the_web_page(live):
    answer = live.api.call("GET", "/status", headers={"origin": "https://studio.example.com"})
    assert answer.status == 200
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "Retry-After" in answer.headers["Access-Control-Expose-Headers"]


def test_a_recorded_api_gateway_event_is_handled(live):
    # A full REST proxy event as API Gateway sends it (tests/events), straight to the handler.
    from emulator.api_gateway import lambda_context
    from tests.conftest import ROOT

    live.mode = "defer"
    event = json.loads((ROOT / "tests" / "events" / "api_post_generations.json").read_text())
    result = live.api_module.lambda_handler(event, lambda_context())
    assert result["statusCode"] == 202
    body = json.loads(result["body"])
    assert body["parameters"]["seed"] == 42 and body["parameters"]["num_images"] == 2
    assert [r["inference_id"] for r in live.sent] == [f"{body['id']}-0-2", f"{body['id']}-1-2"]
