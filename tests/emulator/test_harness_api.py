"""Serving on the harness: the synthesized API, result and dispatcher functions against the
pipeline's own resources and the asynchronous endpoint the pipeline deployed (SageMaker's queue,
scaling and notices simulated, images placeholders)."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from PIL import Image

from emulator import PipelineHarness, SageMakerSimulator, placeholder_jpeg, synthesize
from tests.pipeline.conftest import jpeg_bytes

PHOTOS = {f"dog{i}.jpg": jpeg_bytes(512 + i, 512) for i in range(3)}
CAT_PHOTOS = {f"cat{i}.jpg": jpeg_bytes(600, 600 + i) for i in range(3)}
INVOCATION_TIMEOUT_S = 2
CONTEXT = {
    "quietWindowSeconds": 2,
    "endpointPollSeconds": 1,
    "endpointMaxWaitMinutes": 5,
    "idleMinutes": 1,
    "asyncInvocationTimeoutSeconds": INVOCATION_TIMEOUT_S,
}


@pytest.fixture(scope="module")
def synthesized():
    return synthesize(CONTEXT)


def harness(synthesized, **simulator) -> PipelineHarness:
    return PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(**simulator))


def wait_for(h: PipelineHarness, condition, timeout_s: float = 30, what: str = "condition"):
    """Poll `condition` every 0.05 s on the harness's clock (skipped when everything else waits too),
    for at most `timeout_s` real seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        h.clock.wait(0.05)
    raise TimeoutError(what)


def finished(h: PipelineHarness, generation_id: str, timeout_s: float = 30) -> dict:
    return wait_for(
        h,
        lambda: (lambda b: b if b["status"] != "queued" else None)(
            h.api("GET", f"/generations/{generation_id}").json()
        ),
        timeout_s,
        f"generation {generation_id}",
    )


def instances(h: PipelineHarness) -> int:
    variant = h.client("sagemaker").describe_endpoint(EndpointName=h.endpoint_name)["ProductionVariants"][0]
    return variant["CurrentInstanceCount"]


def events(h: PipelineHarness, kind: str) -> list[str]:
    return [detail for _, event, detail in h.simulator.timeline if event == kind]


def test_generations_go_through_the_asynchronous_endpoint_and_come_back_as_images(synthesized):
    with harness(synthesized, training_s=1, endpoint_s=1) as h:
        api_env = h.api_function.environment
        assert api_env["GENERATIONS_TABLE"] == h.generations_table != h.registry_table
        assert api_env["BUCKET_NAME"] == h.results_function.environment["BUCKET_NAME"] == h.bucket
        assert api_env["ENDPOINT_NAME"] == h.endpoint_name
        ttl = h.client("dynamodb").describe_time_to_live(TableName=h.generations_table)
        assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}

        model_id = h.train_and_deploy(
            "doppler",
            {**PHOTOS, "dataset_info.json": json.dumps({"instance_prompt": "a photo of sks Doppler dog"}).encode()},
        )
        # The endpoint config is an asynchronous one: answers and notices as the issue asks.
        config = h.client("sagemaker").describe_endpoint_config(EndpointConfigName=model_id)
        async_config = config["AsyncInferenceConfig"]
        assert async_config["ClientConfig"] == {"MaxConcurrentInvocationsPerInstance": 1}
        output = async_config["OutputConfig"]
        assert output["S3OutputPath"] == f"s3://{h.bucket}/inference/outputs"
        assert output["S3FailurePath"] == f"s3://{h.bucket}/inference/failures"
        assert set(output["NotificationConfig"]) == {"SuccessTopic", "ErrorTopic"}

        created = h.api("POST", "/generations", {"prompt": "Doppler on the beach", "num_images": 2, "seed": 7})
        assert created.status == 202, created.text
        generation_id = created.json()["id"]
        assert created.headers["Location"] == f"/generations/{generation_id}"
        body = finished(h, generation_id)
        assert body["status"] == "succeeded" and body["model_id"] == model_id, body
        assert [i["seed"] for i in body["images"]] == [7, 8]
        # One asynchronous request per image, each with its request object, TTL and timeout.
        sent = [r for r in h.simulator.async_requests if r["inference_id"].startswith(generation_id)]
        assert sorted(r["inference_id"] for r in sent) == [f"{generation_id}-0-2", f"{generation_id}-1-2"]
        assert {(r["accept"], r["ttl_s"], r["timeout_s"]) for r in sent} == {
            ("application/json;jpeg", 360 * 60, INVOCATION_TIMEOUT_S)
        }
        stored = h.generation_images(generation_id)
        assert sorted(stored) == [f"generated/{generation_id}/0.jpg", f"generated/{generation_id}/1.jpg"]
        for image, key, seed in zip(body["images"], sorted(stored), (7, 8)):
            url = urlparse(image["url"])
            assert url.path.endswith(key) and "X-Amz-Signature=" in url.query
            fetched = requests.get(image["url"], timeout=5)  # moto serves the presigned URL
            assert fetched.status_code == 200 and fetched.content == stored[key]
            assert stored[key] == placeholder_jpeg("Doppler on the beach", seed, model_id)
            assert Image.open(io.BytesIO(stored[key])).format == "JPEG"
            # Signed by a session of the image signer role that lasts until the stated expiry
            # (a URL ends with its credentials; the API function's own have no stated lifetime).
            signer = _signing_session(image["url"])
            assert "/ApiImageSigner" in signer.role_arn
            assert signer.expiration.replace(tzinfo=timezone.utc) >= datetime.fromisoformat(
                image["expires_at"].replace("Z", "+00:00")
            )

        # `wait` answers with the finished generation when the notice comes in time.
        waited = h.api("POST", "/generations", {"prompt": "Doppler in the snow", "seed": 1, "wait": 10})
        assert waited.status == 200, waited.text
        assert waited.json()["status"] == "succeeded" and len(waited.json()["images"]) == 1


def test_without_a_live_model_generations_are_refused_and_nothing_is_sent(synthesized):
    with harness(synthesized) as h:
        refused = h.api("POST", "/generations", {"prompt": "anything"})
        assert refused.status == 409 and "no model has been trained" in refused.json()["error"]["message"]
        assert h.api("GET", "/status").json()["endpoint"]["state"] == "none"
        assert h.simulator.async_requests == []
        runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
        with pytest.raises(ClientError) as missing:
            runtime.invoke_endpoint_async(EndpointName=h.endpoint_name, InputLocation=f"s3://{h.bucket}/x.json")
        assert missing.value.response["Error"]["Code"] == "ValidationError"


def test_fifty_requests_at_zero_instances_start_one_instance_and_each_runs_once(synthesized):
    with harness(synthesized, scale_out_s=1.5, scale_in_s=0.5, inference_s=0.01) as h:
        model_id = h.train_and_deploy("doppler", PHOTOS)
        # Given the endpoint scaled in to zero instances after its idle time (billing stopped)
        wait_for(h, lambda: instances(h) == 0, 10, "scale-in to zero")
        assert events(h, "async-scale-in")
        # When 50 generations arrive
        ids, answers = [], []
        for n in range(50):
            answer = h.api("POST", "/generations", {"prompt": f"Doppler number {n}", "seed": n})
            assert answer.status == 202, answer.text
            ids.append(answer.json()["id"])
            answers.append(answer.json())
        # Then they wait, saying why, while one instance starts
        assert answers[0]["status"] == "queued"
        assert answers[0]["queue_reason"].startswith("starting an instance, usually up to 10 minutes"), answers[0]
        results = [finished(h, i) for i in ids]
        # And all 50 are served, by one scale-out from zero, each request run exactly once
        assert Counter(r["status"] for r in results) == {"succeeded": 50}
        assert [d for d in events(h, "async-scale-out") if "from 0" in d][:1] and len(
            [d for d in events(h, "async-scale-out") if "from 0" in d]
        ) == 1
        runs = Counter(r["inference_id"] for r in h.simulator.async_requests)
        assert len(runs) == 50 and set(runs.values()) == {1}
        assert {r["model"] for r in h.simulator.async_requests} == {model_id}
        assert all(len(h.generation_images(i)) == 1 for i in ids)


def test_requests_during_a_model_update_are_served_by_the_old_then_the_new_model(synthesized):
    # An update takes longer than the result function's reuse of an InService answer (CACHE_TTL_S, 5 s), as
    # in AWS (new instances take minutes): the simulated one takes 6 s.
    with harness(synthesized, endpoint_s=6, inference_s=0.05) as h:
        old = h.train_and_deploy("doppler", PHOTOS)
        # Given a second model being deployed (the endpoint Updating: SageMaker keeps the old model serving)
        h.upload_dataset("cat", CAT_PHOTOS)
        wait_for(h, lambda: h.simulator.count("update_endpoint"), 60, "update started")
        during = []
        while h.client("sagemaker").describe_endpoint(EndpointName=h.endpoint_name)["EndpointStatus"] == "Updating":
            answer = h.api("POST", "/generations", {"prompt": "during the update", "seed": len(during)})
            assert answer.status == 202, answer.text  # never refused for the endpoint's state
            during.append(answer.json()["id"])
            h.clock.wait(0.2)
        h.wait_until_idle(60)
        (new,) = set(h.models()) - {old}
        assert h.live_pointer()["liveModelId"] == new
        after = h.api("POST", "/generations", {"prompt": "after the update", "seed": 99}).json()["id"]
        served = {i: finished(h, i) for i in [*during, after]}
        assert during and all(b["status"] == "succeeded" for b in served.values())
        requests_ = {r["inference_id"].rsplit("-", 2)[0]: r for r in h.simulator.async_requests}
        ran = {i: r["model"] for i, r in requests_.items()}
        # The old model served during the update, the new one after it
        assert [ran[i] for i in during][:1] == [old] and ran[after] == new
        assert set(ran[i] for i in during) <= {old, new}
        # Each result records the model the endpoint served when the result came (docs/api.md): the
        # one that produced it, but for a request that ran on the old model and whose notice was
        # handled after the switch.
        (switched,) = [t for t, e, _ in h.simulator.timeline if e == "endpoint-updated"]
        wrong = [i for i in served if served[i]["model_id"] != ran[i]]
        assert all(
            ran[i] == old and served[i]["model_id"] == new and requests_[i]["started_s"] <= switched for i in wrong
        ), wrong


def test_an_endpoint_deleted_out_of_band_is_recreated_and_queued_requests_are_then_sent(synthesized):
    with harness(synthesized, endpoint_s=1) as h:
        model_id = h.train_and_deploy("doppler", PHOTOS)
        # Given someone deletes the endpoint in the console
        h.client("sagemaker").delete_endpoint(EndpointName=h.endpoint_name)
        # When a generation arrives, it is accepted, queued with the reason, and the endpoint re-created
        answer = h.api("POST", "/generations", {"prompt": "after the outage", "seed": 3})
        assert answer.status == 202, answer.text
        assert "being re-created from the live model's configuration" in answer.json()["queue_reason"]
        body = finished(h, answer.json()["id"], 60)
        assert body["status"] == "succeeded" and body["model_id"] == model_id
        heal = [r for r in h.deploy_runs() if r.name.startswith("heal-")]
        assert len(heal) == 1 and heal[0].status == "SUCCEEDED"
        assert h.models()[model_id]["status"] == "live" and h.live_pointer()["liveModelId"] == model_id
        # The re-created endpoint has its autoscaling again (scale to zero and from zero)
        policies = h.client("application-autoscaling").describe_scaling_policies(ServiceNamespace="sagemaker")
        assert {p["PolicyName"] for p in policies["ScalingPolicies"]} == {
            "backlog-per-instance",
            "scale-out-from-zero",
            "scale-in-when-idle",
        }

        # And without any request, the periodic check brings a deleted endpoint back too
        h.client("sagemaker").delete_endpoint(EndpointName=h.endpoint_name)
        assert h.run_schedule(h.dispatch_function)["healing"] is True
        h.wait_until_idle(60)
        assert h.client("sagemaker").describe_endpoint(EndpointName=h.endpoint_name)["EndpointStatus"] == "InService"


def test_a_failed_recreation_never_marks_the_live_model_failed(synthesized):
    with harness(synthesized, endpoint_s=1) as h:
        model_id = h.train_and_deploy("doppler", PHOTOS)
        # Given the endpoint and its config deleted out of band: the re-creation cannot work
        sagemaker = h.client("sagemaker")
        sagemaker.delete_endpoint(EndpointName=h.endpoint_name)
        sagemaker.delete_endpoint_config(EndpointConfigName=model_id)
        # (AWS refuses CreateEndpoint on a config that is gone: it has no stack tag any more)
        h.iam.expect_denials(
            f"sagemaker:CreateEndpoint on arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{model_id}"
        )
        answer = h.api("POST", "/generations", {"prompt": "lost", "seed": 1})
        assert answer.status == 202
        h.wait_until_idle(60)
        (heal,) = [r for r in h.deploy_runs() if r.name.startswith("heal-")]
        assert heal.status == "FAILED" and heal.error == "EndpointNotRestored"
        # Then the model is still live, the pointer says what failed, the operator is told
        assert h.models()[model_id]["status"] == "live"
        pointer = h.live_pointer()
        assert pointer["liveModelId"] == model_id and pointer["endpointError"]
        assert h.notifications()[-1]["subject"] == "DreamBooth: endpoint could not be re-created"
        assert h.api("GET", "/status").json()["endpoint"]["last_error"] == pointer["endpointError"]
        assert h.api("GET", f"/generations/{answer.json()['id']}").json()["status"] == "queued"


def test_a_model_error_and_an_invocation_timeout_end_failed_with_the_reason(synthesized):
    def model_error(payload):
        return "CUDA out of memory" if "too big" in payload["prompt"] else None

    with harness(synthesized, model_error=model_error) as h:
        h.train_and_deploy("doppler", PHOTOS)
        failed = h.api("POST", "/generations", {"prompt": "something too big", "wait": 10})
        assert failed.status == 200 and failed.json()["status"] == "failed"
        assert "CUDA out of memory" in failed.json()["error"] and failed.json()["images"] == []
        h.simulator.inference_s = INVOCATION_TIMEOUT_S + 1
        slow = h.api("POST", "/generations", {"prompt": "slow"}).json()["id"]
        body = finished(h, slow)
        assert body["status"] == "failed" and "Invocation timed out" in body["error"], body


def test_a_request_whose_ttl_passes_in_the_queue_ends_failed_with_the_reason(synthesized):
    with harness(synthesized, scale_out_s=60, scale_in_s=0.3) as h:
        h.train_and_deploy("doppler", PHOTOS)
        wait_for(h, lambda: instances(h) == 0, 10, "scale-in to zero")
        generation_id = h.api("POST", "/generations", {"prompt": "no instance in time"}).json()["id"]
        (queued,) = h.simulator.async_requests
        assert queued["ttl_s"] == 360 * 60  # as the API sent it (asyncRequestTtlMinutes)
        # Given its TTL shortened inside the simulator to one second (SageMaker's minimum is 60 s,
        # which the harness's service-model check enforces on the API's call)
        queued["ttl_s"] = 1
        # Then, no instance coming within the TTL, SageMaker's error notice fails it with the reason
        body = finished(h, generation_id, 15)
        assert body["status"] == "failed" and "Request expired" in body["error"], body
        assert [r["outcome"] for r in h.simulator.async_requests] == ["failed"]


def _signing_session(url: str):
    """moto's STS session whose access key signed a presigned URL."""
    from moto.sts.models import sts_backends

    access_key = parse_qs(urlparse(url).query)["X-Amz-Credential"][0].split("/")[0]
    (session,) = [s for s in sts_backends["123456789012"]["aws"].assumed_roles if s.access_key_id == access_key]
    return session
