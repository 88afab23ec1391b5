"""State of the SageMaker endpoint that serves the live model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from botocore.exceptions import ClientError

from errors import Unavailable

NONE, CREATING, UPDATING, IN_SERVICE, FAILED = "none", "creating", "updating", "in_service", "failed"

_STATES = {
    "Creating": CREATING,
    "Updating": UPDATING,
    "SystemUpdating": UPDATING,
    "RollingBack": UPDATING,
    "InService": IN_SERVICE,
    "Failed": FAILED,
    "UpdateRollbackFailed": FAILED,
    "OutOfService": FAILED,
    "Deleting": NONE,
}

# Endpoint creation and updates take minutes; clients are told to come back after this long.
RETRY_AFTER_BUSY_S = 60
RETRY_AFTER_FAILED_S = 300
# DescribeEndpoint has a low request quota; its answer is reused for this long.
CACHE_TTL_S = 5.0


@dataclass(frozen=True)
class EndpointState:
    name: str
    state: str
    sagemaker_status: Optional[str] = None
    failure_reason: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "state": self.state}
        if self.sagemaker_status:
            body["sagemaker_status"] = self.sagemaker_status
        if self.failure_reason:
            body["failure_reason"] = self.failure_reason
        return body

    def require_in_service(self) -> None:
        """Raise 503 with Retry-After unless the endpoint can take requests now."""
        if self.state == IN_SERVICE:
            return
        if self.state == NONE:
            raise Unavailable(f"endpoint {self.name} does not exist (yet); deploy a model with PUT /models/live",
                              retry_after_s=RETRY_AFTER_BUSY_S)
        if self.state in (CREATING, UPDATING):
            raise Unavailable(f"endpoint {self.name} is {self.state}; try again in a minute",
                              retry_after_s=RETRY_AFTER_BUSY_S)
        reason = f": {self.failure_reason}" if self.failure_reason else ""
        raise Unavailable(f"endpoint {self.name} is {self.sagemaker_status or self.state}{reason}",
                          retry_after_s=RETRY_AFTER_FAILED_S)


class EndpointWatcher:
    def __init__(self, sagemaker: Callable[[], Any], name: str, *, ttl_s: float = CACHE_TTL_S,
                 clock: Callable[[], float] = time.monotonic):
        self._sagemaker = sagemaker
        self.name = name
        self._ttl_s = ttl_s
        self._clock = clock
        self._cached: Optional[tuple[float, EndpointState]] = None

    def state(self, *, fresh: bool = False) -> EndpointState:
        now = self._clock()
        if not fresh and self._cached and now - self._cached[0] < self._ttl_s:
            return self._cached[1]
        state = self._describe()
        self._cached = (now, state)
        return state

    def _describe(self) -> EndpointState:
        try:
            answer = self._sagemaker().describe_endpoint(EndpointName=self.name)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ValidationException":
                return EndpointState(self.name, NONE)
            raise
        status = answer.get("EndpointStatus", "")
        return EndpointState(self.name, _STATES.get(status, UPDATING), status, answer.get("FailureReason"))
