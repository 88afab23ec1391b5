"""Benchmark of the API function (issue 4, point 7): its own overhead per request and its cold
import time, each against a bare boto3 InvokeEndpoint baseline measured in the same run.

    .venv/bin/python -m scripts.bench_api [--requests 2000] [--imports 7]

How it measures (no AWS account, no network):
- Every AWS call, the handler's and the baseline's, goes through botocore in full (parameter
  validation, serialization, SigV4 signing, response parsing); only the HTTP exchange is replaced
  by a canned answer at botocore's `before-send` hook. Service and model time are therefore zero:
  what remains is the code's own time.
- Overhead per request: wall time of `handler.lambda_handler(event, context)` for API Gateway REST
  events, for POST /generations (validate, look up the live model, check the endpoint, record,
  dispatch the worker asynchronously; 4 AWS calls, 3 when the endpoint state is cached) and for
  GET /generations/{id} (1 AWS call plus presigning the image URLs). Logging and EMF metrics run
  as deployed (output discarded). Baseline: wall time of one bare `invoke_endpoint` call.
- Cold import: fresh interpreters import `handler` (Powertools, boto3, the handler's modules, its
  DynamoDB client) vs. `import boto3` + `boto3.client("sagemaker-runtime")`, median of N runs each.
Targets (issue 4): overhead p50 <= 5 ms; cold import <= 1.5x the bare boto3 import.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
CODE = ROOT / "lambda" / "api"
REGION = "us-east-1"
ENDPOINT = "bench-sd"
MODEL = "dog-20261120100000"
OVERHEAD_TARGET_MS = 5.0
IMPORT_RATIO_TARGET = 1.5

FUNCTION_ENV = {
    "GENERATIONS_TABLE": "bench-generations",
    "REGISTRY_TABLE": "bench-registry",
    "BUCKET_NAME": "bench-bucket",
    "ENDPOINT_NAME": ENDPOINT,
    "DEPLOY_STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:123456789012:stateMachine:bench-deploy",
    "WORKER_FUNCTION_NAME": "bench-worker",
    "POWERTOOLS_SERVICE_NAME": "inference-api",
    "POWERTOOLS_METRICS_NAMESPACE": "DreamBoothPipeline",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    # How datasets are judged (dataset_rules.JudgeSettings: the dataset commit route), as the stack sets it
    "DEFAULT_INSTANCE_PROMPT": "a photo of sks {dataset}",
    "DEFAULT_HYPERPARAMETERS": "{}",
    "TRAINING_INSTANCE_TYPE": "ml.g4dn.2xlarge",
    "MIN_IMAGES": "3",
    "MAX_IMAGES": "100",
    "MAX_IMAGE_BYTES": str(20 * 1024 * 1024),
}
# Fake credentials; any call that escaped the canned answers would go to a closed local port.
SAFE_ENV = {
    "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_SESSION_TOKEN": "bench",
    "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
}

class _Raw:
    """Stands in for urllib3's response body in botocore (read for streams, stream for content)."""

    def __init__(self, data: bytes):
        self._io = io.BytesIO(data)

    def stream(self, *_: Any, **__: Any):
        yield self._io.read()

    def read(self, *args: Any, **__: Any) -> bytes:
        return self._io.read(*args)


def _answer(status: int, body: bytes, content_type: str = "application/x-amz-json-1.0"):
    from botocore.awsrequest import AWSResponse

    headers = {"content-type": content_type, "content-length": str(len(body)), "x-amzn-requestid": "bench"}
    return AWSResponse("https://bench.invalid", status, headers, _Raw(body))


def canned_answers(generation: dict) -> Callable[..., Any]:
    from boto3.dynamodb.types import TypeSerializer

    ser = TypeSerializer()
    registry = {
        "__live__": {"modelId": "__live__", "liveModelId": MODEL, "endpointName": ENDPOINT},
        MODEL: {"modelId": MODEL, "status": "live", "artifactUri": "s3://b/models/m.tar.gz"},
    }

    def item_json(item: dict) -> bytes:
        return json.dumps({"Item": {k: ser.serialize(v) for k, v in item.items()}}).encode()

    def answer(request: Any, event_name: str, **_: Any):
        operation = event_name.rsplit(".", 1)[-1]
        if operation == "GetItem":
            body = json.loads(request.body)
            key = next(iter(body["Key"].values()))["S"]
            item = generation if body["TableName"] == FUNCTION_ENV["GENERATIONS_TABLE"] else registry.get(key)
            return _answer(200, item_json(item) if item else b"{}")
        if operation == "UpdateItem" and json.loads(request.body).get("ReturnValues") == "ALL_NEW":
            # The API records lastUsedAt on the live pointer and reads it back in the same call.
            key = next(iter(json.loads(request.body)["Key"].values()))["S"]
            item = registry[key]
            return _answer(200, json.dumps({"Attributes": {k: ser.serialize(v) for k, v in item.items()}}).encode())
        if operation in ("PutItem", "UpdateItem"):
            return _answer(200, b"{}")
        if operation == "Invoke":
            return _answer(202, b"", "application/json")
        if operation == "DescribeEndpoint":
            return _answer(200, json.dumps({"EndpointName": ENDPOINT, "EndpointStatus": "InService"}).encode(),
                           "application/x-amz-json-1.1")
        if operation == "InvokeEndpoint":
            image = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 2000).decode()
            return _answer(200, json.dumps({"generated_images": [image], "prompt": "p"}).encode(), "application/json")
        raise AssertionError(f"no canned answer for {event_name}")

    return answer


def hooked_client_factory(answer: Callable[..., Any]) -> Callable[..., Any]:
    import boto3

    def factory(service: str, **kwargs: Any):
        client = boto3.client(service, **{"region_name": REGION, **kwargs})
        client.meta.events.register("before-send", answer)
        return client

    return factory


def rest_event(method: str, path: str, resource: str, body: Any = None, params: dict | None = None) -> dict:
    return {
        "resource": resource, "path": path, "httpMethod": method, "headers": {"content-type": "application/json"},
        "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": params, "stageVariables": None, "isBase64Encoded": False,
        "body": json.dumps(body) if body is not None else None,
        "requestContext": {"resourcePath": resource, "httpMethod": method, "path": f"/v1{path}", "stage": "v1",
                           "requestId": str(uuid.uuid4()), "accountId": "123456789012", "apiId": "bench",
                           "identity": {"sourceIp": "127.0.0.1"}},
    }


class Context:
    function_name = "bench-api"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:bench-api"
    aws_request_id = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 28000


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def timed(call: Callable[[], Any], count: int) -> list[float]:
    for _ in range(min(50, count)):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def measure_requests(count: int) -> dict[str, tuple[float, float]]:
    os.environ.update({**SAFE_ENV, **FUNCTION_ENV})
    sys.path.insert(0, str(CODE))
    import handler  # noqa: E402  (the environment above must be in place first)
    import logging

    for log_handler in logging.getLogger(handler.logger.name).handlers:  # log lines are formatted, then dropped
        log_handler.setStream(open(os.devnull, "w"))

    now = time.time()
    generation = {
        "generationId": str(uuid.uuid4()), "status": "succeeded", "prompt": "a dog", "numImages": 2,
        "width": 512, "height": 512, "steps": 50, "guidanceScale": Decimal("7.5"), "seed": 42, "modelId": MODEL,
        "endpointName": ENDPOINT, "createdAt": "2026-11-25T10:00:00.000Z", "startedAt": "2026-11-25T10:00:00.100Z",
        "finishedAt": "2026-11-25T10:00:20.000Z", "modelMs": 19000, "expiresAt": int(now) + 86400,
        "imageKeys": [f"generated/x/{i}.jpg" for i in range(2)],
    }
    answer = canned_answers(generation)
    factory = hooked_client_factory(answer)
    wire(handler, answer)

    post = rest_event("POST", "/generations", "/generations", {"prompt": "a photo of a Doppler dog", "num_images": 2})
    get = rest_event("GET", f"/generations/{generation['generationId']}", "/generations/{id}",
                     params={"id": generation["generationId"]})

    def call(event: dict) -> Callable[[], Any]:
        def run() -> None:
            result = handler.lambda_handler(event, Context())
            assert result["statusCode"] in (200, 202), (result, sys.stdout.getvalue()[-3000:])

        return run

    runtime = factory("sagemaker-runtime")

    def bare_invoke() -> None:
        runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json", Accept="application/json;jpeg",
                                Body=b'{"prompt": "a photo of a Doppler dog"}')["Body"].read()

    results = {}
    with contextlib.redirect_stdout(io.StringIO()) as sink:
        results["baseline: bare boto3 invoke_endpoint"] = percentiles(timed(bare_invoke, count))
        results["POST /generations"] = percentiles(timed(call(post), count))
        results["GET /generations/{id}"] = percentiles(timed(call(get), count))
        sink.truncate(0)
    return results


def wire(handler, answer) -> None:
    """Point the imported handler at clients whose HTTP exchange is answered by `answer`."""
    clients = handler.Clients(hooked_client_factory(answer))
    handler.clients = clients
    handler.endpoint = handler.EndpointWatcher(lambda: clients.sagemaker, ENDPOINT)
    handler.generations = handler.Generations(handler.settings, clients, handler.endpoint)
    handler.registry = handler.Registry(handler.settings, clients, handler.endpoint)


def cold_child(side: str) -> None:
    """In a fresh interpreter: time the import, then the first request after it (ms, one line)."""
    started = time.perf_counter()
    if side == "baseline":
        import boto3

        runtime = boto3.client("sagemaker-runtime", region_name=REGION)
        imported = time.perf_counter()
        runtime.meta.events.register("before-send", canned_answers({}))
        runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json",
                                Accept="application/json;jpeg", Body=b'{"prompt": "a dog"}')["Body"].read()
    else:
        sys.path.insert(0, str(CODE))
        import handler

        imported = time.perf_counter()
        wire(handler, canned_answers({}))
        with contextlib.redirect_stdout(io.StringIO()):
            result = handler.lambda_handler(rest_event("POST", "/generations", "/generations", {"prompt": "a dog"}),
                                            Context())
        assert result["statusCode"] == 202, result
    answered = time.perf_counter()
    print(json.dumps({"import_ms": (imported - started) * 1000, "first_ms": (answered - started) * 1000}))


def measure_cold(runs: int) -> dict[str, dict[str, float]]:
    env = {**os.environ, **SAFE_ENV, **FUNCTION_ENV}

    def once(side: str) -> dict[str, float]:
        out = subprocess.run([sys.executable, "-m", "scripts.bench_api", "--cold-child", side], cwd=ROOT,
                             capture_output=True, text=True, env=env, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    once("baseline"), once("handler")  # warm the file cache for both
    samples: dict[str, list[dict[str, float]]] = {"baseline": [], "handler": []}
    for _ in range(runs):  # interleaved, so that machine load affects both alike
        for side in samples:
            samples[side].append(once(side))
    return {side: {key: statistics.median(s[key] for s in runs_) for key in ("import_ms", "first_ms")}
            for side, runs_ in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per route (default 2000)")
    parser.add_argument("--imports", type=int, default=7, help="cold imports per side (default 7)")
    parser.add_argument("--cold-child", choices=["baseline", "handler"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold_child:
        os.environ.update({**SAFE_ENV, **FUNCTION_ENV})
        cold_child(args.cold_child)
        return 0

    cold = measure_cold(args.imports)
    results = measure_requests(args.requests)
    base_p50, base_p95 = results["baseline: bare boto3 invoke_endpoint"]

    print(f"Python {sys.version.split()[0]}, {args.requests} requests per route, {args.imports} cold starts per side")
    print(f"{'warm request (handler overhead)':40} {'p50 ms':>8} {'p95 ms':>8} {'p50 ratio':>10} {'p95 ratio':>10}")
    for name, (p50, p95) in results.items():
        print(f"{name:40} {p50:8.3f} {p95:8.3f} {p50 / base_p50:10.2f} {p95 / base_p95:10.2f}")
    base, mine = cold["baseline"], cold["handler"]
    import_ratio = mine["import_ms"] / base["import_ms"]
    first_ratio = mine["first_ms"] / base["first_ms"]
    print(f"{'cold start (fresh interpreter, median)':40} {'import':>8} {'+1st req':>8}")
    print(f"{'baseline: boto3 + client + invoke':40} {base['import_ms']:8.1f} {base['first_ms']:8.1f}")
    print(f"{'handler: import + first POST':40} {mine['import_ms']:8.1f} {mine['first_ms']:8.1f}")
    print(f"{'ratio handler / baseline':40} {import_ratio:8.2f} {first_ratio:8.2f}")
    worst_p50 = max(p50 for name, (p50, _) in results.items() if not name.startswith("baseline"))
    print(f"overhead p50 {worst_p50:.2f} ms (target <= {OVERHEAD_TARGET_MS} ms): "
          f"{'met' if worst_p50 <= OVERHEAD_TARGET_MS else 'NOT met'}")
    print(f"cold import ratio {import_ratio:.2f} (target <= {IMPORT_RATIO_TARGET}): "
          f"{'met' if import_ratio <= IMPORT_RATIO_TARGET else 'NOT met'}; "
          f"the handler creates its clients on first use, so also compare import + first request: {first_ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
