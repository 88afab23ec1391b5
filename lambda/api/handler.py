"""API function: routes API Gateway REST requests to the logic modules beside it.

Tracing: the function runs with X-Ray active tracing (set by the construct); the Powertools
Tracer is left out here because importing the X-Ray SDK would roughly double this function's cold
import time (see scripts/bench_api.py). The result and dispatcher functions use it.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any, Optional

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

import spec
from aws import Clients
from datasets import Datasets
from dreambooth_shared import dataset_rules
from dreambooth_shared.contract import METRIC_GENERATIONS_REQUESTED, error_code, log_cold_start
from endpoint import EndpointWatcher
from errors import ApiError, NotFound, Unavailable
from generations import GenerationRequest, Generations
from registry import Registry
from settings import Settings
from web import WebPage

settings = Settings.from_environ(os.environ)
logger = Logger()
log_cold_start(logger)
metrics = Metrics()
# Browsers (the web page) call with x-api-key or SigV4 headers and read Location / Retry-After.
CORS_ALLOW_HEADERS = ["content-type", "x-api-key", "authorization", "x-amz-date", "x-amz-security-token"]
CORS_EXPOSE_HEADERS = ["Location", "Retry-After"]
cors = (
    CORSConfig(
        allow_origin=settings.cors_allow_origin,
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=CORS_EXPOSE_HEADERS,
        max_age=600,
    )
    if settings.cors_allow_origin
    else None
)
app = APIGatewayRestResolver(cors=cors)
clients = Clients(
    region=settings.region, bucket=settings.bucket_name
)  # each client is created on first use (see scripts/bench_api.py)
endpoint = EndpointWatcher(lambda: clients.sagemaker, settings.endpoint_name)
generations = Generations(settings, clients, endpoint)
registry = Registry(settings, clients, endpoint)
datasets = Datasets(settings, clients, dataset_rules.JudgeSettings.from_environ(os.environ))
page = WebPage(settings.api_auth, upload_origin=settings.upload_origin)  # files read on the first GET /

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalServerError",
        "LimitExceededException",
    }
)
_UUID_CHARS = frozenset("0123456789abcdef-")


def _json(status: int, body: Any, headers: Optional[dict[str, str]] = None) -> Response:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body, separators=(",", ":")),
        headers=headers or {},
    )


def _request_id() -> Optional[str]:
    try:
        return app.current_event.request_context.request_id
    except (AttributeError, KeyError, TypeError):
        return None


def _body() -> Any:
    event = app.current_event
    raw: Any = event.body
    if raw is not None and event.is_base64_encoded:
        try:
            raw = base64.b64decode(raw)
        except ValueError:
            raw = b"\xff"  # parse_json turns this into a 400
    return spec.parse_json(raw)


@app.post("/generations")
def create_generation() -> Response:
    request = GenerationRequest.from_body(_body())
    status, result = generations.create(request)
    metrics.add_metric(name=METRIC_GENERATIONS_REQUESTED, unit=MetricUnit.Count, value=1)
    logger.info(
        "generation accepted",
        extra={
            "generation_id": result["id"],
            "status": result["status"],
            "model_id": result["model_id"],
            "num_images": request.num_images,
        },
    )
    headers = {"Location": f"/generations/{result['id']}"} if status == 202 else None
    return _json(status, result, headers)


@app.get("/generations/<generation_id>")
def get_generation(generation_id: str) -> Response:
    if len(generation_id) != 36 or not set(generation_id) <= _UUID_CHARS:
        raise NotFound(f"no generation with id {generation_id!r}")
    return _json(200, generations.get(generation_id))


@app.get("/models")
def list_models() -> Response:
    return _json(200, registry.list_models())


@app.put("/models/live")
def switch_live_model() -> Response:
    status, result = registry.switch_live(_body())
    logger.info("live model switch", extra={"model_id": result["model_id"], "state": result["state"]})
    return _json(status, result)


@app.get("/models/<model_id>")
def get_model(model_id: str) -> Response:
    return _json(200, registry.get_model(model_id))


@app.post("/models/<model_id>/retrain")
def retrain_model(model_id: str) -> Response:
    status, result = registry.retrain(model_id)
    logger.info("retrain started", extra={"model_id": model_id, "execution_arn": result["execution_arn"]})
    return _json(status, result)


@app.get("/status")
def get_status() -> Response:
    return _json(200, registry.status())


@app.post("/datasets")
def start_dataset_upload() -> Response:
    result = datasets.start(_body())
    logger.info(
        "dataset upload started",
        extra={"dataset": result["dataset"], "upload_id": result["upload_id"], "files": len(result["uploads"])},
    )
    return _json(201, result)


@app.post("/datasets/<name>/commit")
def commit_dataset_upload(name: str) -> Response:
    result = datasets.commit(name, _body())
    logger.info("dataset committed", extra={"dataset": name, "images": len(result["images"])})
    return _json(201, result)


@app.get("/openapi.json")
def get_openapi() -> Response:
    return Response(status_code=200, content_type="application/json", body=spec.SPEC_TEXT)


@app.get("/")
def get_web_page() -> Response:
    return _web("/")


@app.get("/web/app.js")
def get_web_script() -> Response:
    return _web("/web/app.js")


@app.get("/web/app.css")
def get_web_style() -> Response:
    return _web("/web/app.css")


def _web(route: str) -> Response:
    page_path = app.current_event.get("requestContext", {}).get("path")
    return Response(
        status_code=200,
        content_type=page.content_type(route),
        body=page.body(route, page_path),
        headers=page.headers(route),
    )


@app.not_found
def route_not_found(_: Exception) -> Response:
    return _json(404, NotFound("no such route").body(_request_id()))


@app.exception_handler(ApiError)
def api_error(error: ApiError) -> Response:
    logger.info("request refused", extra={"status": error.status, "code": error.code, "reason": error.message})
    return _json(error.status, error.body(_request_id()), error.headers())


@app.exception_handler(ClientError)
def aws_error(error: ClientError) -> Response:
    code = error_code(error)
    if code in THROTTLING_CODES:
        logger.warning("AWS throttled or unavailable", extra={"aws_error_code": code})
        return api_error(Unavailable("a backing AWS service is busy; try again shortly", retry_after_s=2))
    return unexpected_error(error)


@app.exception_handler(BotoCoreError)
def aws_unreachable(error: BotoCoreError) -> Response:
    logger.warning("AWS unreachable", extra={"error": str(error)})
    return api_error(Unavailable("a backing AWS service did not answer; try again shortly", retry_after_s=2))


@app.exception_handler(Exception)
def unexpected_error(error: Exception) -> Response:
    # The trace goes to the log only; the caller gets the request id to quote.
    logger.exception("unhandled error")
    body = {"error": {"code": "InternalError", "message": "internal error; quote the request id when reporting it"}}
    if _request_id():
        body["error"]["request_id"] = _request_id()
    return _json(500, body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict, context: Any) -> dict:
    response = app.resolve(event, context)
    # One data point per request and status class (2xx/4xx/5xx), so no flush is ever empty.
    metrics.add_metric(name=f"Responses{str(response.get('statusCode', 0))[0]}xx", unit=MetricUnit.Count, value=1)
    return response
