"""Errors the API answers with. Each carries its HTTP status; none carries a stack trace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ApiError(Exception):
    status = 500
    code = "InternalError"

    def __init__(self, message: str, *, fields: tuple[FieldError, ...] = (), retry_after_s: Optional[int] = None):
        super().__init__(message)
        self.message = message
        self.fields = fields
        self.retry_after_s = retry_after_s

    def body(self, request_id: Optional[str] = None) -> dict:
        error: dict = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = [{"field": f.field, "message": f.message} for f in self.fields]
        if request_id:
            error["request_id"] = request_id
        return {"error": error}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else {}


class BadRequest(ApiError):
    status = 400
    code = "BadRequest"


class NotFound(ApiError):
    status = 404
    code = "NotFound"


class Conflict(ApiError):
    status = 409
    code = "Conflict"


class Unavailable(ApiError):
    status = 503
    code = "ServiceUnavailable"

    def __init__(self, message: str, *, retry_after_s: int = 60):
        super().__init__(message, retry_after_s=retry_after_s)
