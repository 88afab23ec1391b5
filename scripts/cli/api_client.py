"""A small client of the text-to-image API (docs/api.md), authenticated by API key or SigV4."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import quote

import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

REQUEST_TIMEOUT_S = 35  # above API Gateway's 29 s integration limit
DOWNLOAD_CHUNK_BYTES = 64 * 1024


@dataclass(eq=False)  # exceptions stay hashable
class ApiError(Exception):
    """An error answer: the API's `error.message` (or API Gateway's `message`) and its status."""

    status: int
    message: str
    code: str = ""
    fields: list[dict[str, str]] = field(default_factory=list)
    retry_after_s: Optional[float] = None

    def __str__(self) -> str:
        text = f"{self.status} {self.message}"
        for item in self.fields:
            text += f"\n  {item.get('field')}: {item.get('message')}"
        return text


class ApiUnreachable(Exception):
    """No HTTP answer at all (network, DNS, TLS, timeout)."""


class SigV4Signer:
    """Signs requests for API Gateway's IAM authorization (service execute-api)."""

    def __init__(self, credentials: Any, region: str):
        self.credentials = credentials
        self.region = region

    def headers(self, method: str, url: str, body: Optional[bytes], headers: dict[str, str]) -> dict[str, str]:
        request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
        SigV4Auth(self.credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(request)
        return dict(request.headers.items())


class ApiClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: Optional[str] = None,
        signer: Optional[SigV4Signer] = None,
        http: Optional[requests.Session] = None,
    ):
        self.base_url = base_url.rstrip("/") + "/"
        self.api_key = api_key
        self.signer = signer
        self.http = http or requests.Session()

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, JSON body) for a 2xx answer; ApiError for any other."""
        url = self.base_url + path.lstrip("/")
        data = json.dumps(body).encode() if body is not None else None
        headers = {"accept": "application/json"}
        if data is not None:
            headers["content-type"] = "application/json"
        if self.api_key:
            headers["x-api-key"] = self.api_key
        if self.signer:
            headers = self.signer.headers(method, url, data, headers)
        try:
            answer = self.http.request(method, url, data=data, headers=headers, timeout=REQUEST_TIMEOUT_S)
        except requests.RequestException as error:
            raise ApiUnreachable(f"{method} {url}: {error}") from None
        try:
            payload = answer.json() if answer.content else None
        except ValueError:
            payload = None
        if 200 <= answer.status_code < 300:
            return answer.status_code, payload
        raise _error(answer, payload)

    def status(self) -> dict[str, Any]:
        return self.call("GET", "status")[1]

    def models(self) -> dict[str, Any]:
        return self.call("GET", "models")[1]

    def model(self, model_id: str) -> dict[str, Any]:
        return self.call("GET", f"models/{quote(model_id, safe='')}")[1]

    def retrain(self, model_id: str) -> tuple[int, dict[str, Any]]:
        return self.call("POST", f"models/{quote(model_id, safe='')}/retrain")

    def switch_live(self, model_id: str) -> tuple[int, dict[str, Any]]:
        return self.call("PUT", "models/live", {"model_id": model_id})

    def create_generation(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self.call("POST", "generations", request)

    def generation(self, generation_id: str) -> dict[str, Any]:
        return self.call("GET", f"generations/{quote(generation_id, safe='')}")[1]

    def download(self, url: str, handle: Any) -> int:
        """Stream a presigned image URL into an open binary file; the byte count."""
        try:
            with self.http.get(url, stream=True, timeout=REQUEST_TIMEOUT_S) as answer:
                if answer.status_code != 200:
                    raise ApiError(answer.status_code, f"image download failed: {answer.text[:200]}")
                total = 0
                for chunk in answer.iter_content(DOWNLOAD_CHUNK_BYTES):
                    handle.write(chunk)
                    total += len(chunk)
                return total
        except requests.RequestException as error:
            raise ApiUnreachable(f"image download: {error}") from None


def _error(answer: requests.Response, payload: Any) -> ApiError:
    retry_after = answer.headers.get("Retry-After")
    try:
        retry_after_s = float(retry_after) if retry_after is not None else None
    except ValueError:
        retry_after_s = None
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return ApiError(
            answer.status_code,
            str(error.get("message", "")),
            str(error.get("code", "")),
            list(error.get("fields") or []),
            retry_after_s,
        )
    if isinstance(payload, dict) and "message" in payload:  # API Gateway's own answers (403, 429)
        return ApiError(answer.status_code, str(payload["message"]), retry_after_s=retry_after_s)
    return ApiError(answer.status_code, answer.text[:300] or answer.reason or "", retry_after_s=retry_after_s)
