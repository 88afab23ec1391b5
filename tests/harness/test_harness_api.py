"""The API on the harness: the synthesized API function and worker, against the pipeline's own
resources, with the endpoint the pipeline deployed (SageMaker simulated, images placeholders)."""

from __future__ import annotations

import base64
import io
import json
import time
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from PIL import Image

from tests.harness import PipelineHarness, SageMakerSimulator, placeholder_jpeg, synthesize
from tests.pipeline.conftest import jpeg_bytes

PHOTOS = {f"dog{i}.jpg": jpeg_bytes(512 + i, 512) for i in range(3)}


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    return synthesize({"quietWindowSeconds": 2, "endpointPollSeconds": 1},
                      outdir=tmp_path_factory.mktemp("assembly"))


def test_upload_train_deploy_then_generate_images_through_the_api(synthesized):
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(training_s=1, endpoint_s=1)) as h:
        # The API's functions are deployed from the template, environment resolved to moto's resources.
        api_env = h.api_function.environment
        assert api_env["GENERATIONS_TABLE"] == h.generations_table != h.registry_table
        assert api_env["REGISTRY_TABLE"] == h.registry_table
        assert api_env["BUCKET_NAME"] == h.worker_function.environment["BUCKET_NAME"] == h.bucket
        assert api_env["ENDPOINT_NAME"] == h.endpoint_name
        assert api_env["DEPLOY_STATE_MACHINE_ARN"] == h.deploy_machine_arn
        ttl = h.client("dynamodb").describe_time_to_live(TableName=h.generations_table)
        assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiresAt"}

        h.upload_dataset("doppler", {**PHOTOS, "dataset_info.json": json.dumps(
            {"instance_prompt": "a photo of sks Doppler dog"}).encode()})
        h.wait_until_idle(60)
        (model_id,) = h.models()
        status = h.api("GET", "/status").json()
        assert status["endpoint"]["state"] == "in_service" and status["live_model"]["model_id"] == model_id

        created = h.api("POST", "/generations", {"prompt": "Doppler on the beach", "num_images": 2, "seed": 7})
        assert created.status == 202, created.text
        generation_id = created.json()["id"]
        assert created.headers["Location"] == f"/generations/{generation_id}"
        assert created.json()["model_id"] == model_id
        h.wait_until_idle(30)  # the worker runs on its own thread, as an Event invocation does

        (worker_run,) = h.async_invocations
        assert worker_run.function == h.worker_function.name
        assert worker_run.payload == {"generationId": generation_id} and worker_run.error is None
        assert [d for _, e, d in h.simulator.timeline if e == "invoke-endpoint"] == [
            f"{h.endpoint_name} model={model_id} seed={seed} images=1 (placeholder)" for seed in (7, 8)]

        shown = h.api("GET", f"/generations/{generation_id}")
        assert shown.status == 200
        body = shown.json()
        assert body["status"] == "succeeded" and body["model_id"] == model_id
        assert [i["seed"] for i in body["images"]] == [7, 8]
        stored = h.generation_images(generation_id)
        assert sorted(stored) == [f"generated/{generation_id}/0.jpg", f"generated/{generation_id}/1.jpg"]
        for image, key in zip(body["images"], sorted(stored)):
            url = urlparse(image["url"])
            assert url.path.endswith(key) and "X-Amz-Signature=" in url.query
            fetched = requests.get(image["url"], timeout=5)  # moto serves the presigned URL
            assert fetched.status_code == 200 and fetched.content == stored[key]
            # Signed by a session of the image signer role that lasts until the stated expiry
            # (a URL ends with its credentials; the API function's own have no stated lifetime).
            signer = _signing_session(image["url"])
            assert "/ApiImageSigner" in signer.role_arn
            assert signer.expiration.replace(tzinfo=timezone.utc) >= datetime.fromisoformat(
                image["expires_at"].replace("Z", "+00:00"))
            picture = Image.open(io.BytesIO(stored[key]))
            assert picture.format == "JPEG" and picture.size == (512, 512)

        # `wait` answers with the finished generation while the worker runs alongside.
        waited = h.api("POST", "/generations", {"prompt": "Doppler in the snow", "seed": 1, "wait": 10})
        assert waited.status == 200, waited.text
        assert waited.json()["status"] == "succeeded" and len(waited.json()["images"]) == 1


def test_without_a_live_model_the_api_refuses_and_the_simulated_endpoint_serves_nothing(synthesized):
    with PipelineHarness(synthesized=synthesized) as h:
        refused = h.api("POST", "/generations", {"prompt": "anything"})
        assert refused.status == 409 and "no model has been trained" in refused.json()["error"]["message"]
        assert h.async_invocations == []
        assert h.api("GET", "/status").json()["endpoint"]["state"] == "none"

        runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
        with pytest.raises(ClientError) as missing:
            runtime.invoke_endpoint(EndpointName=h.endpoint_name, Body=b"{}", ContentType="application/json",
                                    Accept="application/json;jpeg")
        assert missing.value.response["Error"]["Code"] == "ValidationError"
        assert h.simulator.count("invoke_endpoint") == 1


def test_the_simulated_endpoint_answers_only_once_in_service(synthesized):
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(endpoint_s=3)) as h:
        h.upload_dataset("doppler", PHOTOS)
        deadline = time.monotonic() + 30
        while not h.simulator.count("create_endpoint") and time.monotonic() < deadline:
            time.sleep(0.1)
        # The first deployment created the endpoint, which stays Creating for 3 s.
        assert h.client("sagemaker").describe_endpoint(EndpointName=h.endpoint_name)["EndpointStatus"] == "Creating"
        assert h.api("POST", "/generations", {"prompt": "too early"}).status == 409  # nothing live yet
        runtime = h.client("sagemaker-runtime")
        request = {"EndpointName": h.endpoint_name, "ContentType": "application/json",
                   "Accept": "application/json;jpeg", "Body": b'{"prompt": "x", "seed": 3}'}
        with pytest.raises(ClientError, match="not in service"):
            runtime.invoke_endpoint(**request)

        h.wait_until_idle(60)
        (model_id,) = h.models()
        (image,) = json.loads(runtime.invoke_endpoint(**request)["Body"].read())["generated_images"]
        assert base64.b64decode(image) == placeholder_jpeg("x", 3, model_id)
        with pytest.raises(ClientError, match="answers Accept: application/json;jpeg only"):
            runtime.invoke_endpoint(**{**request, "Accept": "application/json"})
        with pytest.raises(ClientError, match="cannot read this request"):
            runtime.invoke_endpoint(**{**request, "Body": b'{"seed": 3}'})


def _signing_session(url: str):
    """moto's STS session whose access key signed a presigned URL."""
    from moto.sts.models import sts_backends

    access_key = parse_qs(urlparse(url).query)["X-Amz-Credential"][0].split("/")[0]
    (session,) = [s for s in sts_backends["123456789012"]["aws"].assumed_roles if s.access_key_id == access_key]
    return session
