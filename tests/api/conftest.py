"""Fixtures for the API tests: the real handlers, loaded as Lambda loads them, against moto.

Harness additions (what moto lacks, said plainly):
- moto's InvokeEndpointAsync returns canned locations and never answers. Here it is patched:
  each request is recorded (`sent`: endpoint, headers, the request object's JSON) while the
  endpoint exists and is InService or Updating (else SageMaker's ValidationError), and answered
  as SageMaker does: the model's answer (`queue_images`, `queue_results`) or error
  (`queue_model_error`) written to the output or failure location, then the success or error
  notice delivered to the real result handler as SNS would. `mode = "defer"` keeps the requests
  until `answer_deferred()`.
Everything else is moto's: DynamoDB (the generations table with its pending index), S3 (presigned
URLs included), SageMaker DescribeEndpoint, Step Functions StartExecution/ListExecutions.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional
from unittest import mock

import boto3
import pytest
from moto import mock_aws
from moto.core.exceptions import JsonRESTError
from moto.sagemaker.models import sagemaker_backends
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from emulator.api_gateway import ApiGatewayAdapter, lambda_context
from emulator.atomic_dynamodb import atomic_dynamodb
from emulator.lambda_runtime import API_CODE, load

REGION = "us-east-1"
ACCOUNT = "123456789012"
GENERATIONS_TABLE = "test-generations"
REGISTRY_TABLE = "test-registry"
BUCKET = "test-data-bucket"
ENDPOINT = "DreamBoothPipeline-sd"
PENDING_INDEX = "pending"

FUNCTION_ENV = {
    "GENERATIONS_TABLE": GENERATIONS_TABLE,
    "REGISTRY_TABLE": REGISTRY_TABLE,
    "BUCKET_NAME": BUCKET,
    "ENDPOINT_NAME": ENDPOINT,
    "DEPLOY_STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:test-deploy",
    "TRAINING_STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:test-train",
    "MAX_WAIT_SECONDS": "20",
    "GENERATION_TTL_DAYS": "7",
    "IMAGE_URL_EXPIRY_SECONDS": "900",
    "ASYNC_REQUEST_PREFIX": "inference/requests/",
    "ASYNC_REQUEST_TTL_SECONDS": "21600",
    "ASYNC_INVOCATION_TIMEOUT_SECONDS": "3600",
    "INSTANCE_START_MINUTES": "10",
    "IDLE_MINUTES": "10",
    "API_AUTH": "apiKey",
    "PENDING_INDEX_NAME": PENDING_INDEX,
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


class RuntimeValidationError(JsonRESTError):
    code = 400

    def __init__(self, message: str):
        super().__init__("ValidationError", message)


# Cost, measured: botocore parses each service's JSON model once per session (its loader's cache),
# and a test makes several sessions: mock_aws starts every test without a default session (it
# patches boto3.DEFAULT_SESSION to None), the CLI makes its own, moto one per backend. That parsing
# and the building of clients were about 70% of these tests' CPU. Here every session reads through
# one loader per data path (`models_parsed_once` in tests/conftest.py), and one session, whose clients are kept, is the
# default session of every test (`shared_session`). A client holds no AWS state (moto's backends
# do, and each test's mock_aws resets them), only its endpoint, credentials and configuration,
# which are its cache key.
def _client_key(service_name: str, args: tuple, kwargs: dict) -> tuple:
    config = kwargs.get("config")
    options = sorted(config._user_provided_options.items()) if config is not None else None
    return (service_name, args, repr(sorted((k, v) for k, v in kwargs.items() if k != "config")), repr(options))


class SharedSession(boto3.Session):
    """The tests' default session: one client per (service, arguments, configuration) per run."""

    def __init__(self) -> None:
        super().__init__(region_name=REGION)
        self._clients: dict[tuple, Any] = {}

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        key = _client_key(service_name, args, kwargs)
        if key not in self._clients:
            self._clients[key] = super().client(service_name, *args, **kwargs)
        return self._clients[key]


_SHARED: list[SharedSession] = []


def shared_session() -> SharedSession:
    """Created inside the first test's mock_aws, so its credentials are the ones moto sets for every test."""
    if not _SHARED:
        _SHARED.append(SharedSession())
    return _SHARED[0]


@pytest.fixture(scope="session")
def api_module():
    return load(API_CODE, "handler", FUNCTION_ENV)


@pytest.fixture(scope="session")
def results_module():
    return load(API_CODE, "results", FUNCTION_ENV)


@pytest.fixture(scope="session")
def dispatch_module():
    return load(API_CODE, "dispatch", FUNCTION_ENV)


@dataclass
class Harness:
    api: ApiGatewayAdapter
    api_module: Any
    results_module: Any
    dispatch_module: Any
    mode: str = "sync"  # "sync": each request is answered as it is sent; "defer": on answer_deferred()
    sent: list[dict] = field(default_factory=list)
    deferred: list[dict] = field(default_factory=list)
    answers: list[tuple[str, str]] = field(default_factory=list)  # ("ok", body) or ("error", reason)
    notices: list[dict] = field(default_factory=list)

    @property
    def ddb(self):
        return boto3.client("dynamodb", region_name=REGION)

    @property
    def s3(self):
        return boto3.client("s3", region_name=REGION)

    def put_model(self, model_id: str, status: str = "live", **extra: Any) -> dict:
        item = {
            "modelId": {"S": model_id},
            "status": {"S": status},
            "dataset": {"S": model_id.rsplit("-", 1)[0]},
            "instancePrompt": {"S": "a photo of a Doppler dog"},
            "createdAt": {"S": "2026-11-20T10:00:00Z"},
            "updatedAt": {"S": "2026-11-20T11:00:00Z"},
        }
        if status not in ("validating", "training"):
            item["artifactUri"] = {"S": f"s3://{BUCKET}/models/{model_id}/output/model.tar.gz"}
            item["trainLoss"] = {"N": "0.123"}
        item.update(extra)
        self.ddb.put_item(TableName=REGISTRY_TABLE, Item=item)
        return item

    def set_live(self, model_id: str) -> None:
        self.ddb.put_item(
            TableName=REGISTRY_TABLE,
            Item={
                "modelId": {"S": "__live__"},
                "liveModelId": {"S": model_id},
                "endpointName": {"S": ENDPOINT},
                "updatedAt": {"S": "2026-11-20T11:00:00Z"},
            },
        )

    def live_model(self, model_id: str = "dog-20261120100000") -> str:
        self.put_model(model_id)
        self.set_live(model_id)
        return model_id

    def queue_results(self, *bodies: str) -> None:
        self.answers.extend(("ok", b) for b in bodies)

    def queue_images(self, count: int) -> list[bytes]:
        images = [tiny_jpeg((40 * i % 255, 80, 120)) for i in range(count)]
        self.queue_results(*(jumpstart_answer(i) for i in images))
        return images

    def queue_model_error(self, message: str, after_calls: int = 0) -> None:
        """Make request number `after_calls` + 1 (from now) fail in the model with `message`."""
        self.queue_images(after_calls)
        self.answers.append(("error", message))

    def answer(self, request: dict) -> dict:
        """SageMaker finishing one request: its answer or failure in S3, then the notice, via SNS."""
        kind, body = self.answers.pop(0) if self.answers else ("ok", jumpstart_answer(tiny_jpeg()))
        location = request["output"] if kind == "ok" else request["failure"]
        bucket, _, key = location.removeprefix("s3://").partition("/")
        self.s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
        notice = {
            "inferenceId": request["inference_id"],
            "eventName": "InferenceResult",
            "eventTime": "2026-11-25T10:00:20.000Z",
            "requestParameters": {"endpointName": ENDPOINT},
        }
        if kind == "ok":
            notice.update(invocationStatus="Completed", responseParameters={"outputLocation": location})
        else:
            notice.update(
                invocationStatus="Failed",
                responseParameters={"failureLocation": location},
                failureReason=f'ClientError: Received client error (424) from primary with message "{body}"',
            )
        return self.deliver(notice)

    def deliver(self, notice: dict) -> dict:
        self.notices.append(notice)
        event = {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "Sns": {"Message": json.dumps(notice), "TopicArn": "arn:aws:sns:us-east-1:123:results"},
                }
            ]
        }
        return self.results_module.lambda_handler(event, lambda_context("results"))

    def answer_deferred(self) -> list[dict]:
        results = []
        while self.deferred:
            results.append(self.answer(self.deferred.pop(0)))
        return results

    def generation_item(self, generation_id: str) -> Optional[dict]:
        return self.ddb.get_item(TableName=GENERATIONS_TABLE, Key={"generationId": {"S": generation_id}}).get("Item")


def _create_resources() -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(
        TableName=REGISTRY_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "modelId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "modelId", "KeyType": "HASH"}],
    )
    ddb.create_table(
        TableName=GENERATIONS_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"} for n in ("generationId", "pendingShard", "pendingSince")
        ],
        KeySchema=[{"AttributeName": "generationId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": PENDING_INDEX,
                "Projection": {"ProjectionType": "ALL"},
                "KeySchema": [
                    {"AttributeName": "pendingShard", "KeyType": "HASH"},
                    {"AttributeName": "pendingSince", "KeyType": "RANGE"},
                ],
            }
        ],
    )
    ddb.update_time_to_live(
        TableName=GENERATIONS_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiresAt"}
    )
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="test-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    for name in ("test-deploy", "test-train"):
        boto3.client("stepfunctions", region_name=REGION).create_state_machine(
            name=name,
            roleArn=role,
            definition=json.dumps({"StartAt": "StandIn", "States": {"StandIn": {"Type": "Pass", "End": True}}}),
        )


def create_endpoint(status_model: str = "dog-20261120100000") -> None:
    """A real (moto) endpoint: moto marks it InService at once."""
    sm = boto3.client("sagemaker", region_name=REGION)
    role = f"arn:aws:iam::{ACCOUNT}:role/test-role"
    sm.create_model(
        ModelName=status_model,
        ExecutionRoleArn=role,
        PrimaryContainer={"Image": "123.dkr.ecr.us-east-1.amazonaws.com/x:1"},
    )
    sm.create_endpoint_config(
        EndpointConfigName=status_model,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": status_model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.g4dn.2xlarge",
            }
        ],
        AsyncInferenceConfig={
            "OutputConfig": {
                "S3OutputPath": f"s3://{BUCKET}/inference/outputs",
                "S3FailurePath": f"s3://{BUCKET}/inference/failures",
            }
        },
    )
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=status_model)


def wire(module: Any) -> None:
    """Point a loaded handler's module-level objects at fresh clients (created inside moto)."""
    clients = module.Clients()
    module.clients = clients
    endpoint = module.EndpointWatcher(lambda: clients.sagemaker, ENDPOINT, ttl_s=0)
    if hasattr(module, "generations"):
        module.endpoint = endpoint
        module.generations = module.Generations(module.settings, clients, endpoint)
        module.registry = module.Registry(module.settings, clients, endpoint)
    if hasattr(module, "results"):
        module.endpoint = endpoint
        module.results = module.Results(
            module.settings, clients, clock=module.time.time, served_model=endpoint.serving_config
        )
    if hasattr(module, "dispatcher"):
        module.dispatcher = module.Dispatcher(module.settings, clients, endpoint)


@pytest.fixture
def harness(api_module, results_module, dispatch_module, monkeypatch):
    with mock_aws(), atomic_dynamodb(), mock.patch("boto3.DEFAULT_SESSION", shared_session()):
        _create_resources()
        h = Harness(ApiGatewayAdapter(api_module.lambda_handler), api_module, results_module, dispatch_module)

        def invoke_endpoint_async(response):
            name = response.path.rstrip("/").split("/")[-2]
            headers = {k.lower(): v for k, v in response.headers.items()}
            endpoint = sagemaker_backends[ACCOUNT][REGION].endpoints.get(name)
            if endpoint is None or endpoint.endpoint_status not in ("InService", "Updating"):
                raise RuntimeValidationError(f"Endpoint {name} cannot take asynchronous requests")
            bucket, _, key = headers["x-amzn-sagemaker-inputlocation"].removeprefix("s3://").partition("/")
            request = {
                "endpoint": name,
                "headers": headers,
                "inference_id": headers["x-amzn-sagemaker-inference-id"],
                "payload": json.loads(h.s3.get_object(Bucket=bucket, Key=key)["Body"].read()),
                "output": f"s3://{BUCKET}/inference/outputs/{uuid.uuid4()}.out",
                "failure": f"s3://{BUCKET}/inference/failures/{uuid.uuid4()}-error.out",
            }
            h.sent.append(request)
            (h.deferred.append(request) if h.mode == "defer" else h.answer(request))
            return (
                202,
                {
                    "X-Amzn-SageMaker-OutputLocation": request["output"],
                    "X-Amzn-SageMaker-FailureLocation": request["failure"],
                },
                json.dumps({"InferenceId": request["inference_id"]}),
            )

        monkeypatch.setattr(SageMakerRuntimeResponse, "invoke_endpoint_async", invoke_endpoint_async)
        for module in (api_module, results_module, dispatch_module):
            wire(module)
        yield h
