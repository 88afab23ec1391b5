"""End to end on the offline rehearsal: `dreambooth upload` into the bucket of the synthesized pipeline
(emulator/: the real state machines and Lambda handlers on moto, simulated SageMaker), followed
through the real API handler serving that pipeline's registry, until the model is live.

What stands in for AWS here: the harness (see emulator/README.md) and, for S3's EventBridge
notifications, this test delivering an "Object Created" event for each object the CLI uploaded
(at the CLI's first wait, as EventBridge would shortly after the uploads).
"""

from __future__ import annotations

import json
import time

import boto3
import pytest

from emulator import PipelineHarness, SageMakerSimulator, synthesize
from emulator.api_gateway import ApiGatewayAdapter
from emulator.lambda_runtime import API_CODE, load
from emulator.pipeline_harness import BUCKET_NAME, REGION
from scripts import cli
from tests.api.conftest import FUNCTION_ENV
from tests.cli.conftest import API_KEY_VALUE, LocalApi, _serve, create_stack, write_image

PROMPT = "a photo of sks dog"


@pytest.fixture(scope="module")
def synthesized():
    return synthesize({"quietWindowSeconds": 2, "endpointPollSeconds": 1, "endpointMaxWaitMinutes": 5})


class RealClock:
    """Real time; at the first wait, S3's events for everything uploaded reach the pipeline."""

    def __init__(self, harness: PipelineHarness, prefix: str):
        self.harness, self.prefix, self.delivered = harness, prefix, False

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if not self.delivered:
            self.delivered = True
            s3 = self.harness.client("s3")
            for obj in s3.list_objects_v2(Bucket=BUCKET_NAME, Prefix=self.prefix)["Contents"]:
                self.harness.deliver(self.harness.s3_event(obj["Key"], size=obj["Size"], etag=obj["ETag"].strip('"')))
        self.harness.clock.wait(seconds)  # the emulator's time: skipped while the pipeline only waits


def test_upload_follows_the_real_pipeline_until_the_model_is_live(synthesized, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        write_image(folder / f"dog{i}.jpg", color=(50 * i, 80, 160))
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(training_s=1, endpoint_s=3)) as h:
        # The API function configured as the stack configures it: this pipeline's registry and endpoint
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName="e2e-generations",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "generationId", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "generationId", "KeyType": "HASH"}],
        )
        api_module = load(
            API_CODE,
            "handler",
            {
                **FUNCTION_ENV,
                "GENERATIONS_TABLE": "e2e-generations",
                "REGISTRY_TABLE": h.registry_table,
                "BUCKET_NAME": BUCKET_NAME,
                "ENDPOINT_NAME": h.endpoint_name,
                "DEPLOY_STATE_MACHINE_ARN": h.deploy_machine_arn,
            },
        )
        api = LocalApi(ApiGatewayAdapter(api_module.lambda_handler).wsgi_app)
        server, thread, url = _serve(api)
        try:
            key_id = boto3.client("apigateway", region_name=REGION).create_api_key(
                name="e2e", value=API_KEY_VALUE, enabled=True
            )["id"]
            create_stack({"BucketName": BUCKET_NAME, "ApiUrl": url, "ApiKeyId": key_id})
            capsys.readouterr()
            code = cli.main(
                [
                    "--json",
                    "upload",
                    str(folder),
                    "--name",
                    "dog",
                    "--prompt",
                    PROMPT,
                    "--poll-seconds",
                    "0.3",
                    "--timeout",
                    "120",
                ],
                session=boto3.Session(region_name=REGION),
                clock=RealClock(h, "datasets/dog/"),
            )
            out, err = capsys.readouterr()
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        h.wait_until_idle(30)
        registry = h.registry()

    body = json.loads("".join(line for line in out.splitlines(keepends=True) if not line.startswith('{"_aws"')))
    assert code == 0, err
    model_id = body["model"]["model_id"]
    assert registry[model_id]["status"] == "live" and registry[model_id]["instancePrompt"] == PROMPT
    phases = [p["phase"] for p in body["phases"]]
    assert phases[0] == "waiting" and phases[-1] == "live"
    assert set(phases) <= {"waiting", "validating", "training", "deploying", "live"}, err
    assert "deploying" in phases, err  # the endpoint takes 3 s: seen at 0.3 s polls
