"""A local stand-in for API Gateway's Lambda proxy integration.

It turns an HTTP request into the REST API (v1) proxy event API Gateway sends, calls the real
handler with it, and turns the handler's answer back into status, headers and body. It does not
authenticate or throttle (API Gateway's job, asserted on the template in test_api_infra.py); it
checks what the Lambda itself must check. `wsgi_app` exposes the same path as a WSGI app so that
schemathesis can drive it.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl

# API Gateway resources and the path-parameter names they bind, as the construct declares them.
RESOURCES = (
    ("/generations/{id}", re.compile(r"^/generations/(?P<id>[^/]+)$")),
    ("/models/live", re.compile(r"^/models/live$")),
    ("/models/{id}/retrain", re.compile(r"^/models/(?P<id>[^/]+)/retrain$")),
    ("/models/{id}", re.compile(r"^/models/(?P<id>[^/]+)$")),
    ("/generations", re.compile(r"^/generations$")),
    ("/models", re.compile(r"^/models$")),
    ("/status", re.compile(r"^/status$")),
    ("/openapi.json", re.compile(r"^/openapi\.json$")),
    ("/", re.compile(r"^/$")),
    ("/web/app.js", re.compile(r"^/web/app\.js$")),
    ("/web/app.css", re.compile(r"^/web/app\.css$")),
)


def lambda_context(name: str = "api") -> Any:
    return SimpleNamespace(
        function_name=name,
        function_version="$LATEST",
        memory_limit_in_mb=512,
        invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        aws_request_id=str(uuid.uuid4()),
        get_remaining_time_in_millis=lambda: 28000,
    )


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str
    raw: dict = field(repr=False, default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.text)


def rest_event(
    method: str,
    path: str,
    body: Optional[bytes | str] = None,
    headers: Optional[dict] = None,
    query: Optional[str] = None,
) -> dict[str, Any]:
    resource, params = path, None
    for template, pattern in RESOURCES:
        match = pattern.match(path)
        if match:
            resource, params = template, (match.groupdict() or None)
            break
    is_b64 = isinstance(body, bytes)
    text = base64.b64encode(body).decode() if is_b64 else body
    pairs = parse_qsl(query or "", keep_blank_values=True)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method.upper(),
        "headers": dict(headers or {}),
        "multiValueHeaders": {k: [v] for k, v in (headers or {}).items()},
        "queryStringParameters": dict(pairs) or None,
        "multiValueQueryStringParameters": ({k: [v for kk, v in pairs if kk == k] for k, _ in pairs} or None),
        "pathParameters": params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method.upper(),
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": str(uuid.uuid4()),
            "accountId": "123456789012",
            "apiId": "local",
            "identity": {"sourceIp": "127.0.0.1", "apiKey": "local-key", "userAgent": "adapter"},
            "requestTimeEpoch": 0,
            "protocol": "HTTP/1.1",
        },
        "body": text,
        "isBase64Encoded": is_b64,
    }


class ApiGatewayAdapter:
    def __init__(self, handler: Callable[[dict, Any], dict]):
        self.handler = handler

    def call(
        self, method: str, path: str, body: Any = None, *, headers: Optional[dict] = None, query: Optional[str] = None
    ) -> Answer:
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        headers = {"content-type": "application/json", **(headers or {})}
        result = self.handler(rest_event(method, path, body, headers, query), lambda_context())
        text = result.get("body") or ""
        if result.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        merged = {k: v for k, v in (result.get("headers") or {}).items()}
        for k, values in (result.get("multiValueHeaders") or {}).items():
            merged.setdefault(k, ",".join(values))
        return Answer(int(result["statusCode"]), merged, text, result)

    def wsgi_app(self, environ: dict, start_response: Callable) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else None
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace")
        if body is not None:
            try:
                body = body.decode("utf-8")
            except UnicodeDecodeError:
                pass  # stays bytes: sent base64-encoded, as API Gateway does for binary bodies
        result = self.handler(
            rest_event(environ["REQUEST_METHOD"], path, body, headers, environ.get("QUERY_STRING")), lambda_context()
        )
        text = result.get("body") or ""
        payload = base64.b64decode(text) if result.get("isBase64Encoded") else text.encode()
        merged = dict(result.get("headers") or {})
        for k, values in (result.get("multiValueHeaders") or {}).items():
            merged.setdefault(k, ",".join(values))
        status = int(result["statusCode"])
        start_response(f"{status} {'OK' if status < 400 else 'ERROR'}", list(merged.items()))
        return [payload]
