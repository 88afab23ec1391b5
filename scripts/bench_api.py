"""Benchmark of the API function (issue 4, point 7; issue 11, point 8): its own overhead per
request, per generation on the asynchronous path against the real-time path it replaced, and its
cold import time, each against a bare boto3 baseline measured in the same run.

    .venv/bin/python -m scripts.bench_api [--requests 2000] [--imports 7] [--realtime-revision REV]

How it measures (no AWS account, no network):
- Every AWS call, the handler's and the baseline's, goes through botocore in full (parameter
  validation, serialization, SigV4 signing, response parsing); only the HTTP exchange is replaced
  by a canned answer at botocore's `before-send` hook. Service and model time are therefore zero:
  what remains is the code's own time.
- Overhead per request: wall time of `handler.lambda_handler(event, context)` for API Gateway REST
  events, for POST /generations (validate, read the live pointer, check the endpoint, record, write
  the request object, InvokeEndpointAsync; 5 AWS calls, 4 when the endpoint state is cached) and
  for GET /generations/{id} (1 AWS call plus presigning the image URLs). Logging and EMF metrics
  run as deployed (output discarded). Baseline: one bare `invoke_endpoint_async` call.
- Overhead per generation (one image), both paths in the same run, each in a fresh interpreter:
  asynchronous (this code): POST /generations (live pointer, endpoint state, record, request object,
  InvokeEndpointAsync) + the result function for SageMaker's success notice (read the answer,
  store the JPEG, count it, finish the record, endpoint state); real-time (the API as of
  `--realtime-revision`, the last one with the real-time endpoint, read from git): POST
  /generations (pointer, endpoint state, record, worker dispatch) + the worker (claim,
  InvokeEndpoint, store the JPEG, finish the record).
- Cold import: fresh interpreters import `handler` (Powertools, boto3, the handler's modules, its
  DynamoDB client) vs. `import boto3` + `boto3.client("sagemaker-runtime")`, median of N runs each.
Targets: overhead p50 <= 5 ms per request (issue 4); request + result handling <= 10 ms p50 per
generation (issue 11); cold import <= 1.5x the bare boto3 import.
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

from dreambooth_shared.contract import API_SERVICE, LIVE_POINTER_ID, METRICS_NAMESPACE, VARIANT_NAME
from stacks.config import INSTANCE_START_MINUTES, ApiConfig, ServingConfig, TrainingConfig

ROOT = Path(__file__).resolve().parent.parent
CODE = ROOT / "lambda" / "api"
"""The API's function code. Every measurement that imports it runs in a fresh interpreter whose PYTHONPATH names
the code folder (`code_env`), as the Lambda runtime finds a function's modules; this process never imports it."""
REGION = "us-east-1"
ENDPOINT = "bench-sd"
MODEL = "dog-20261120100000"
OVERHEAD_TARGET_MS = 5.0
GENERATION_TARGET_MS = 10.0
IMPORT_RATIO_TARGET = 1.5
# The last revision whose API served through the real-time endpoint (InvokeEndpoint in a worker).
REALTIME_REVISION = "cd41dee"

FUNCTION_ENV = {
    "GENERATIONS_TABLE": "bench-generations",
    "REGISTRY_TABLE": "bench-registry",
    "BUCKET_NAME": "bench-bucket",
    "ENDPOINT_NAME": ENDPOINT,
    "DEPLOY_STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:123456789012:stateMachine:bench-deploy",
    "WORKER_FUNCTION_NAME": "bench-worker",  # read by the real-time revision only
    "POWERTOOLS_SERVICE_NAME": API_SERVICE,
    "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    "POWERTOOLS_LOG_LEVEL": "INFO",
    # How datasets are judged (dataset_rules.JudgeSettings: the dataset commit route), as the stack sets it
    "DEFAULT_INSTANCE_PROMPT": TrainingConfig.default_instance_prompt,
    "DEFAULT_HYPERPARAMETERS": "{}",
    "TRAINING_INSTANCE_TYPE": TrainingConfig.instance_type,
    "MIN_IMAGES": str(TrainingConfig.min_images),
    "MAX_IMAGES": str(TrainingConfig.max_images),
    "MAX_IMAGE_BYTES": str(TrainingConfig.max_image_mb * 1024 * 1024),
    "DEFAULT_CLASS_PROMPT": TrainingConfig.default_class_prompt,
    # The settings the stack always passes (the functions have no defaults of their own), at their defaults
    "MAX_WAIT_SECONDS": str(ApiConfig.max_wait_s),
    "GENERATION_TTL_DAYS": str(ApiConfig.generation_ttl_days),
    "IMAGE_URL_EXPIRY_SECONDS": str(ApiConfig.image_url_expiry_s),
    "API_AUTH": ApiConfig.auth,
    "ASYNC_REQUEST_TTL_SECONDS": str(ServingConfig.request_ttl_minutes * 60),
    "ASYNC_INVOCATION_TIMEOUT_SECONDS": str(ServingConfig.invocation_timeout_s),
    "INSTANCE_START_MINUTES": str(INSTANCE_START_MINUTES),
    "IDLE_MINUTES": str(ServingConfig.idle_minutes),
}
# Fake credentials; any call that escaped the canned answers would go to a closed local port.
SAFE_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
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


ANSWER = json.dumps(
    {"generated_images": [base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 2000).decode()], "prompt": "p"}
).encode()


def AWSResponse_ok(headers: dict, status: int = 200, body: bytes = b""):  # noqa: N802 (reads like the class)
    from botocore.awsrequest import AWSResponse

    return AWSResponse(
        "https://bench.invalid",
        status,
        {"content-length": str(len(body)), "x-amzn-requestid": "bench", **headers},
        _Raw(body),
    )


def canned_answers(generation: dict) -> Callable[..., Any]:
    from boto3.dynamodb.types import TypeSerializer

    ser = TypeSerializer()
    registry = {
        LIVE_POINTER_ID: {"modelId": LIVE_POINTER_ID, "liveModelId": MODEL, "endpointName": ENDPOINT},
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
            # The real-time API recorded lastUsedAt on the live pointer and read it back; its worker
            # claimed the record; the result function counts an image on it: each reads the item back.
            body = json.loads(request.body)
            key = next(iter(body["Key"].values()))["S"]
            item = registry.get(key) or {
                **generation,
                "doneCount": 1,
                "numImages": 1,
                "images": {"0": "generated/x/0.jpg"},
            }
            return _answer(200, json.dumps({"Attributes": {k: ser.serialize(v) for k, v in item.items()}}).encode())
        if operation in ("PutItem", "UpdateItem"):
            return _answer(200, b"{}")
        if operation == "Invoke":
            return _answer(202, b"", "application/json")
        if operation == "DescribeEndpoint":
            return _answer(
                200,
                json.dumps(
                    {
                        "EndpointName": ENDPOINT,
                        "EndpointStatus": "InService",
                        "EndpointConfigName": MODEL,
                        "CreationTime": 1.7e9,
                        "ProductionVariants": [{"VariantName": VARIANT_NAME, "CurrentInstanceCount": 1}],
                    }
                ).encode(),
                "application/x-amz-json-1.1",
            )
        if operation in ("InvokeEndpoint", "GetObject"):
            return _answer(200, ANSWER, "application/json")
        if operation == "PutObject":
            return AWSResponse_ok({"ETag": '"bench"'})
        if operation == "InvokeEndpointAsync":
            return AWSResponse_ok(
                {
                    "X-Amzn-SageMaker-OutputLocation": "s3://bench-bucket/inference/outputs/o.out",
                    "X-Amzn-SageMaker-FailureLocation": "s3://bench-bucket/inference/failures/f.out",
                },
                status=202,
                body=json.dumps({"InferenceId": "bench"}).encode(),
            )
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
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {"content-type": "application/json"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": params,
        "stageVariables": None,
        "isBase64Encoded": False,
        "body": json.dumps(body) if body is not None else None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/v1{path}",
            "stage": "v1",
            "requestId": str(uuid.uuid4()),
            "accountId": "123456789012",
            "apiId": "bench",
            "identity": {"sourceIp": "127.0.0.1"},
        },
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


def code_env(code_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a child interpreter that imports the function code of `code_dir` by plain names."""
    return {**os.environ, **SAFE_ENV, **FUNCTION_ENV, **extra, "PYTHONPATH": str(code_dir)}


def measure_requests(count: int) -> dict[str, tuple[float, float]]:
    """Overhead per request, in a fresh interpreter with the API code (ms percentiles per route)."""
    out = subprocess.run(
        [sys.executable, "-m", "scripts.bench_api", "--requests-child", "--requests", str(count)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=code_env(CODE),
        check=True,
    )
    return {k: tuple(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def requests_child(count: int) -> None:
    """In a fresh interpreter with the API code: overhead per request (ms percentiles, one JSON line)."""
    import logging

    import handler

    for log_handler in logging.getLogger(handler.logger.name).handlers:  # log lines are formatted, then dropped
        log_handler.setStream(open(os.devnull, "w"))

    now = time.time()
    generation = {
        "generationId": str(uuid.uuid4()),
        "status": "succeeded",
        "prompt": "a dog",
        "numImages": 2,
        "width": 512,
        "height": 512,
        "steps": 50,
        "guidanceScale": Decimal("7.5"),
        "seed": 42,
        "modelId": MODEL,
        "endpointName": ENDPOINT,
        "createdAt": "2026-11-25T10:00:00.000Z",
        "startedAt": "2026-11-25T10:00:00.100Z",
        "finishedAt": "2026-11-25T10:00:20.000Z",
        "modelMs": 19000,
        "expiresAt": int(now) + 86400,
        "imageKeys": [f"generated/x/{i}.jpg" for i in range(2)],
    }
    answer = canned_answers(generation)
    factory = hooked_client_factory(answer)
    wire(handler, answer)

    post = rest_event("POST", "/generations", "/generations", {"prompt": "a photo of a Doppler dog", "num_images": 2})
    get = rest_event(
        "GET",
        f"/generations/{generation['generationId']}",
        "/generations/{id}",
        params={"id": generation["generationId"]},
    )

    def call(event: dict) -> Callable[[], Any]:
        def run() -> None:
            result = handler.lambda_handler(event, Context())
            assert result["statusCode"] in (200, 202), (result, sys.stdout.getvalue()[-3000:])

        return run

    runtime = factory("sagemaker-runtime")

    def bare_invoke() -> None:
        runtime.invoke_endpoint_async(
            EndpointName=ENDPOINT,
            ContentType="application/json",
            Accept="application/json;jpeg",
            InputLocation="s3://bench-bucket/r.json",
        )

    results = {}
    with contextlib.redirect_stdout(io.StringIO()) as sink:
        results["baseline: bare boto3 invoke_endpoint_async"] = percentiles(timed(bare_invoke, count))
        results["POST /generations"] = percentiles(timed(call(post), count))
        results["GET /generations/{id}"] = percentiles(timed(call(get), count))
        sink.truncate(0)
    print(json.dumps(results))


def wire(handler, answer) -> None:
    """Point the imported handler at clients whose HTTP exchange is answered by `answer`."""
    clients = handler.Clients(hooked_client_factory(answer))
    handler.clients = clients
    handler.endpoint = handler.EndpointWatcher(lambda: clients.sagemaker, ENDPOINT)
    handler.generations = handler.Generations(handler.settings, clients, handler.endpoint)
    handler.registry = handler.Registry(handler.settings, clients, handler.endpoint)


def generation_child(path: str, count: int) -> None:
    """In a fresh interpreter with an API code folder: per-generation overhead (ms percentiles, one JSON line)."""
    import logging

    import handler

    generation_id = str(uuid.uuid4())
    generation = {
        "generationId": generation_id,
        "status": "queued",
        "prompt": "a dog",
        "numImages": 1,
        "width": 512,
        "height": 512,
        "steps": 50,
        "guidanceScale": Decimal("7.5"),
        "seed": 42,
        "modelId": MODEL,
        "endpointName": ENDPOINT,
        "createdAt": "2026-11-25T10:00:00.000Z",
        "expiresAt": int(time.time()) + 86400,
    }
    answer = canned_answers(generation)
    factory = hooked_client_factory(answer)
    wire(handler, answer)
    if path == "realtime":
        import worker as second

        second.worker = second.Worker(second.settings, second.Clients(factory))
        event: dict = {"generationId": generation_id}
    else:
        import results as second

        clients = second.Clients(factory)
        second.clients = clients
        second.endpoint = second.EndpointWatcher(lambda: clients.sagemaker, ENDPOINT)
        second.results = second.Results(
            second.settings, clients, clock=time.time, served_model=second.endpoint.serving_config
        )
        notice = {
            "inferenceId": f"{generation_id}-0-1",
            "invocationStatus": "Completed",
            "eventName": "InferenceResult",
            "eventTime": "2026-11-25T10:00:20.000Z",
            "responseParameters": {
                "contentType": "application/json",
                "outputLocation": "s3://bench-bucket/inference/outputs/o.out",
            },
        }
        event = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(notice)}}]}
    for module in (handler, second):
        for log_handler in logging.getLogger(module.logger.name).handlers:
            log_handler.setStream(open(os.devnull, "w"))
    post = rest_event("POST", "/generations", "/generations", {"prompt": "a photo of a Doppler dog"})

    def request() -> None:
        assert handler.lambda_handler(post, Context())["statusCode"] == 202

    def result() -> None:
        second.lambda_handler(event, Context())

    def both() -> None:
        request()
        result()

    with contextlib.redirect_stdout(io.StringIO()):
        figures = {
            name: percentiles(timed(call, count))
            for name, call in (("request", request), ("result", result), ("generation", both))
        }
    print(json.dumps(figures))


def measure_generations(count: int, revision: str) -> dict[str, dict[str, tuple[float, float]]]:
    """Both paths in this run, each in a fresh interpreter: the real-time API read from git at `revision`."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-realtime-") as old:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, "lambda/api"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
        figures = {}
        for path, code in (("realtime", Path(old) / "lambda" / "api"), ("async", CODE)):
            out = subprocess.run(
                [sys.executable, "-m", "scripts.bench_api", "--generation-child", path, "--requests", str(count)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env=code_env(code, POWERTOOLS_TRACE_DISABLED="true"),
                check=True,
            )
            figures[path] = {k: tuple(v) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}
    return figures


def cold_child(side: str) -> None:
    """In a fresh interpreter: time the import, then the first request after it (ms, one line)."""
    started = time.perf_counter()
    if side == "baseline":
        import boto3

        runtime = boto3.client("sagemaker-runtime", region_name=REGION)
        imported = time.perf_counter()
        runtime.meta.events.register("before-send", canned_answers({}))
        runtime.invoke_endpoint_async(
            EndpointName=ENDPOINT,
            ContentType="application/json",
            Accept="application/json;jpeg",
            InputLocation="s3://bench-bucket/r.json",
        )
    else:
        import handler  # from CODE, which the parent put on this interpreter's PYTHONPATH

        imported = time.perf_counter()
        wire(handler, canned_answers({}))
        with contextlib.redirect_stdout(io.StringIO()):
            result = handler.lambda_handler(
                rest_event("POST", "/generations", "/generations", {"prompt": "a dog"}), Context()
            )
        assert result["statusCode"] == 202, result
    answered = time.perf_counter()
    print(json.dumps({"import_ms": (imported - started) * 1000, "first_ms": (answered - started) * 1000}))


def measure_cold(runs: int) -> dict[str, dict[str, float]]:
    def once(side: str) -> dict[str, float]:
        env = code_env(CODE) if side == "handler" else {**os.environ, **SAFE_ENV, **FUNCTION_ENV}
        out = subprocess.run(
            [sys.executable, "-m", "scripts.bench_api", "--cold-child", side],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    once("baseline"), once("handler")  # warm the file cache for both
    samples: dict[str, list[dict[str, float]]] = {"baseline": [], "handler": []}
    for _ in range(runs):  # interleaved, so that machine load affects both alike
        for side in samples:
            samples[side].append(once(side))
    return {
        side: {key: statistics.median(s[key] for s in runs_) for key in ("import_ms", "first_ms")}
        for side, runs_ in samples.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per route (default 2000)")
    parser.add_argument("--imports", type=int, default=7, help="cold imports per side (default 7)")
    parser.add_argument(
        "--realtime-revision",
        default=REALTIME_REVISION,
        help=f"git revision of the real-time API to compare with (default {REALTIME_REVISION})",
    )
    parser.add_argument("--cold-child", choices=["baseline", "handler"], help=argparse.SUPPRESS)
    parser.add_argument("--generation-child", choices=["realtime", "async"], help=argparse.SUPPRESS)
    parser.add_argument("--requests-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold_child:
        os.environ.update({**SAFE_ENV, **FUNCTION_ENV})
        cold_child(args.cold_child)
        return 0
    if args.generation_child:
        os.environ.update({**SAFE_ENV, **FUNCTION_ENV, "POWERTOOLS_TRACE_DISABLED": "true"})
        generation_child(args.generation_child, args.requests)
        return 0
    if args.requests_child:
        os.environ.update({**SAFE_ENV, **FUNCTION_ENV})
        requests_child(args.requests)
        return 0

    cold = measure_cold(args.imports)
    generations = measure_generations(args.requests, args.realtime_revision)
    results = measure_requests(args.requests)
    base_p50, base_p95 = results["baseline: bare boto3 invoke_endpoint_async"]

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
    print(f"{'per generation, 1 image (handlers only)':40} {'p50 ms':>8} {'p95 ms':>8}")
    for path, label in (("realtime", f"real-time ({args.realtime_revision})"), ("async", "asynchronous (this code)")):
        for part in ("request", "result", "generation"):
            p50, p95 = generations[path][part]
            name = {
                "request": "POST",
                "result": "worker" if path == "realtime" else "result notice",
                "generation": "together",
            }[part]
            print(f"{label + ': ' + name:40} {p50:8.3f} {p95:8.3f}")
    async_p50 = generations["async"]["generation"][0]
    print(
        f"async request + result p50 {async_p50:.2f} ms (target <= {GENERATION_TARGET_MS} ms): "
        f"{'met' if async_p50 <= GENERATION_TARGET_MS else 'NOT met'}; real-time path "
        f"{generations['realtime']['generation'][0]:.2f} ms"
    )
    worst_p50 = max(p50 for name, (p50, _) in results.items() if not name.startswith("baseline"))
    print(
        f"overhead p50 {worst_p50:.2f} ms (target <= {OVERHEAD_TARGET_MS} ms): "
        f"{'met' if worst_p50 <= OVERHEAD_TARGET_MS else 'NOT met'}"
    )
    print(
        f"cold import ratio {import_ratio:.2f} (target <= {IMPORT_RATIO_TARGET}): "
        f"{'met' if import_ratio <= IMPORT_RATIO_TARGET else 'NOT met'}; "
        f"the handler creates its clients on first use, so also compare import + first request: {first_ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
