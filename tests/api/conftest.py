"""Fixtures for the API tests: the real handlers, loaded as Lambda loads them, against moto.

Harness additions (what moto lacks, said plainly):
- moto's docker-less Lambda backend does not run code; `invoke` is patched so that invoking the
  worker function runs the real worker handler in-process (at once, or later on demand, to test
  waiting), exactly with the payload the API function sent.
- moto's sagemaker-runtime cannot answer with an error; `queue_model_error` makes the next
  InvokeEndpoint raise SageMaker's ModelError (HTTP 424) through moto's own error class.
Everything else is moto's: DynamoDB, S3 (presigned URLs included), SageMaker DescribeEndpoint,
Step Functions StartExecution/ListExecutions, and InvokeEndpoint canned results, which are
queued through moto's documented endpoint-results API.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any, Optional

import boto3
import pytest
import requests
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.exceptions import JsonRESTError
from moto.sagemakerruntime.models import SageMakerRuntimeBackend

from tests.harness.atomic_dynamodb import atomic_dynamodb
from tests.api.adapter import ApiGatewayAdapter, lambda_context
from tests.api.lambda_loader import API_CODE, load

REGION = "us-east-1"
ACCOUNT = "123456789012"
GENERATIONS_TABLE = "test-generations"
REGISTRY_TABLE = "test-registry"
BUCKET = "test-data-bucket"
ENDPOINT = "DreamBoothPipeline-sd"
WORKER = "test-generation-worker"
ENDPOINT_RESULTS_URL = "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results"

FUNCTION_ENV = {
    "GENERATIONS_TABLE": GENERATIONS_TABLE,
    "REGISTRY_TABLE": REGISTRY_TABLE,
    "BUCKET_NAME": BUCKET,
    "ENDPOINT_NAME": ENDPOINT,
    "DEPLOY_STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:test-deploy",
    "TRAINING_STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:test-train",
    "WORKER_FUNCTION_NAME": WORKER,
    "MAX_WAIT_SECONDS": "20",
    "GENERATION_TTL_DAYS": "7",
    "IMAGE_URL_EXPIRY_SECONDS": "900",
    "WORKER_TIMEOUT_SECONDS": "300",
    "WORKER_MAX_EVENT_AGE_SECONDS": "900",
    "POWERTOOLS_SERVICE_NAME": "dreambooth-api-test",
    "POWERTOOLS_METRICS_NAMESPACE": "DreamBoothPipelineTest",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "CORS_ALLOW_ORIGIN": "*",
    # How datasets are judged (dataset_rules.JudgeSettings), as the stack sets it from the pipeline's
    "DEFAULT_INSTANCE_PROMPT": "a photo of sks {dataset}",
    "DEFAULT_CLASS_PROMPT": "",
    "DEFAULT_HYPERPARAMETERS": '{"max_steps": "400"}',
    "TRAINING_INSTANCE_TYPE": "ml.g4dn.2xlarge",
    "MIN_IMAGES": "3",
    "MAX_IMAGES": "100",
    "MAX_IMAGE_BYTES": str(20 * 1024 * 1024),
}


def tiny_jpeg(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def jumpstart_answer(*images: bytes) -> str:
    """What the JumpStart SD model returns for Accept: application/json;jpeg."""
    return json.dumps({"generated_images": [base64.b64encode(i).decode() for i in images], "prompt": "p"})


class ModelError(JsonRESTError):
    code = 424

    def __init__(self, message: str):
        super().__init__("ModelError", message)


@pytest.fixture(scope="session")
def api_module():
    return load(API_CODE, "handler", FUNCTION_ENV)


@pytest.fixture(scope="session")
def worker_module():
    return load(API_CODE, "worker", FUNCTION_ENV)


@dataclass
class Harness:
    api: ApiGatewayAdapter
    api_module: Any
    worker_module: Any
    mode: str = "sync"  # "sync": the worker runs during Invoke; "defer": only on run_deferred()
    invocations: list[dict] = field(default_factory=list)
    deferred: list[dict] = field(default_factory=list)
    model_errors: list[Optional[str]] = field(default_factory=list)

    @property
    def ddb(self):
        return boto3.client("dynamodb", region_name=REGION)

    @property
    def s3(self):
        return boto3.client("s3", region_name=REGION)

    def put_model(self, model_id: str, status: str = "live", **extra: Any) -> dict:
        item = {
            "modelId": {"S": model_id}, "status": {"S": status}, "dataset": {"S": model_id.rsplit("-", 1)[0]},
            "instancePrompt": {"S": "a photo of a Doppler dog"}, "createdAt": {"S": "2026-11-20T10:00:00Z"},
            "updatedAt": {"S": "2026-11-20T11:00:00Z"},
        }
        if status not in ("validating", "training"):
            item["artifactUri"] = {"S": f"s3://{BUCKET}/models/{model_id}/output/model.tar.gz"}
            item["trainLoss"] = {"N": "0.123"}
        item.update(extra)
        self.ddb.put_item(TableName=REGISTRY_TABLE, Item=item)
        return item

    def set_live(self, model_id: str) -> None:
        self.ddb.put_item(TableName=REGISTRY_TABLE, Item={
            "modelId": {"S": "__live__"}, "liveModelId": {"S": model_id}, "endpointName": {"S": ENDPOINT},
            "updatedAt": {"S": "2026-11-20T11:00:00Z"},
        })

    def live_model(self, model_id: str = "dog-20261120100000") -> str:
        self.put_model(model_id)
        self.set_live(model_id)
        return model_id

    def queue_results(self, *bodies: str) -> None:
        results = [{"Body": b, "ContentType": "application/json", "InvokedProductionVariant": "AllTraffic",
                    "CustomAttributes": ""} for b in bodies]
        answer = requests.post(ENDPOINT_RESULTS_URL, json={"account_id": ACCOUNT, "region": REGION,
                                                            "results": results}, timeout=5)
        assert answer.status_code == 201

    def queue_images(self, count: int) -> list[bytes]:
        images = [tiny_jpeg((40 * i % 255, 80, 120)) for i in range(count)]
        self.queue_results(*(jumpstart_answer(i) for i in images))
        return images

    def queue_model_error(self, message: str, after_calls: int = 0) -> None:
        """Make InvokeEndpoint call number `after_calls` + 1 (from now) raise ModelError."""
        self.model_errors.extend([None] * after_calls + [message])

    def run_deferred(self) -> list[dict]:
        results = []
        while self.deferred:
            results.append(self.worker_module.lambda_handler(self.deferred.pop(0), lambda_context("worker")))
        return results

    def generation_item(self, generation_id: str) -> Optional[dict]:
        return self.ddb.get_item(TableName=GENERATIONS_TABLE, Key={"generationId": {"S": generation_id}}).get("Item")


def _create_resources() -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    for name, key in ((GENERATIONS_TABLE, "generationId"), (REGISTRY_TABLE, "modelId")):
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": key, "KeyType": "HASH"}])
    ddb.update_time_to_live(TableName=GENERATIONS_TABLE,
                            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"})
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="test-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("worker.py", "# the real code is run in-process by the harness\n")
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=WORKER, Runtime="python3.13", Role=role, Handler="worker.lambda_handler",
        Code={"ZipFile": archive.getvalue()},
    )
    for name in ("test-deploy", "test-train"):
        boto3.client("stepfunctions", region_name=REGION).create_state_machine(
            name=name, roleArn=role,
            definition=json.dumps({"StartAt": "StandIn", "States": {"StandIn": {"Type": "Pass", "End": True}}}),
        )


def create_endpoint(status_model: str = "dog-20261120100000") -> None:
    """A real (moto) endpoint: moto marks it InService at once."""
    sm = boto3.client("sagemaker", region_name=REGION)
    role = f"arn:aws:iam::{ACCOUNT}:role/test-role"
    sm.create_model(ModelName=status_model, ExecutionRoleArn=role,
                    PrimaryContainer={"Image": "123.dkr.ecr.us-east-1.amazonaws.com/x:1"})
    sm.create_endpoint_config(EndpointConfigName=f"{status_model}-config", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": status_model, "InitialInstanceCount": 1,
        "InstanceType": "ml.g4dn.2xlarge"}])
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=f"{status_model}-config")


def wire(module: Any) -> None:
    """Point a loaded handler's module-level objects at fresh clients (created inside moto)."""
    clients = module.Clients()
    module.clients = clients
    if hasattr(module, "generations"):
        module.endpoint = module.EndpointWatcher(lambda: clients.sagemaker, ENDPOINT, ttl_s=0)
        module.generations = module.Generations(module.settings, clients, module.endpoint)
        module.registry = module.Registry(module.settings, clients, module.endpoint)
    if hasattr(module, "worker"):
        module.worker = module.Worker(module.settings, clients)


@pytest.fixture
def harness(api_module, worker_module, monkeypatch):
    with mock_aws(config={"lambda": {"use_docker": False}}), atomic_dynamodb():
        _create_resources()
        h = Harness(ApiGatewayAdapter(api_module.lambda_handler), api_module, worker_module)

        def invoke(backend, function_name, qualifier, body, headers, response_headers):
            backend.get_function(function_name, qualifier)  # moto's own "function not found"
            event = json.loads(body) if body else {}
            h.invocations.append({"function": function_name, "event": event,
                                  "type": headers.get("x-amz-invocation-type")})
            if function_name.split(":")[-1] != WORKER:
                raise AssertionError(f"unexpected Lambda invoke of {function_name}")
            if h.mode == "defer":
                h.deferred.append(event)
                return b""
            return json.dumps(worker_module.lambda_handler(event, lambda_context("worker"))).encode()

        original_invoke_endpoint = SageMakerRuntimeBackend.invoke_endpoint

        def invoke_endpoint(backend, endpoint_name, unique_repr):
            message = h.model_errors[0] if h.model_errors else None
            if h.model_errors and h.model_errors.pop(0) is not None:
                raise ModelError(message)
            return original_invoke_endpoint(backend, endpoint_name, unique_repr)

        monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
        monkeypatch.setattr(SageMakerRuntimeBackend, "invoke_endpoint", invoke_endpoint)
        wire(api_module)
        wire(worker_module)
        yield h


# The sleep episode id the pipeline's idle check would have written (names the wake-up execution).
EPISODE = "20261125T093000123"


def put_to_sleep(harness, state: str = "asleep", attempt: int = 0, model: str = "dog-20261120100000",
                 **extra: dict) -> None:
    """The `__live__` pointer as the pipeline's idle check leaves it (the endpoint is deleted)."""
    harness.live_model(model)
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=REGISTRY_TABLE, Key={"modelId": {"S": "__live__"}},
        UpdateExpression="SET endpointState = :s, asleepSince = :since, sleepEpisode = :e, wakeAttempt = :a, "
                         "endpointConfigName = :c" + "".join(f", {k} = :{k}" for k in extra),
        ExpressionAttributeValues={":s": {"S": state}, ":since": {"S": "2026-11-25T09:30:00.123Z"},
                                   ":e": {"S": EPISODE}, ":a": {"N": str(attempt)}, ":c": {"S": model},
                                   **{f":{k}": v for k, v in extra.items()}},
    )
