"""Use of the endpoint, and its wake-up after an idle shutdown.

The pipeline's idle check (lambda/pipeline/endpoint_sleep.py) deletes an endpoint nobody used for
`idleMinutes` and marks the registry's `__live__` pointer `endpointState = asleep`. Here:
- every POST /generations records `lastUsedAt` on the pointer with one UpdateItem that also
  returns the pointer, so a request either lands before the idle check's conditional "asleep"
  mark (which then does not happen) or sees the mark;
- a request that sees the endpoint asleep (or a failed or stale wake-up) starts exactly one
  wake-up: a conditional write moves the pointer to `waking` and bumps `wakeAttempt`; only the
  request whose write succeeds starts the deploy state machine in wake mode, with the execution
  name `wake-<sleepEpisode>-<attempt>`, which Step Functions refuses to start twice.
Every such request is answered 503 `EndpointWaking` with Retry-After.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Optional

from botocore.exceptions import ClientError

import records
from aws import Clients
from errors import Unavailable
from records import LIVE_POINTER_ID
from settings import Settings

ASLEEP, WAKING, WAKE_FAILED = "asleep", "waking", "wake_failed"
SLEEP_STATES = (ASLEEP, WAKING, WAKE_FAILED)
RETRY_AFTER_WAKING_S = 60
# What a wake-up takes: SageMaker creating a GPU endpoint from a kept config.
WAKE_DURATION_TEXT = "about 5 to 10 minutes"


class EndpointWaking(Unavailable):
    code = "EndpointWaking"

    def __init__(self, message: str):
        super().__init__(message, retry_after_s=RETRY_AFTER_WAKING_S)


def sleep_state(pointer: Optional[dict[str, Any]]) -> Optional[str]:
    state = (pointer or {}).get("endpointState")
    return state if state in SLEEP_STATES else None


@dataclass
class Wakeup:
    settings: Settings
    clients: Clients
    clock: Callable[[], float]

    def touch(self) -> Optional[dict[str, Any]]:
        """Record a use of the live model; return the `__live__` pointer (None when nothing is live)."""
        return records.update_if(
            self.clients.dynamodb,
            TableName=self.settings.registry_table, Key=records.key("modelId", LIVE_POINTER_ID),
            UpdateExpression="SET lastUsedAt = :now",
            ConditionExpression="attribute_exists(modelId)",  # never create a pointer
            ExpressionAttributeValues=records.to_item({":now": records.iso(self.clock())}),
        )

    def wake(self, pointer: dict[str, Any]) -> None:
        """Start the wake-up unless one is under way; always raise EndpointWaking (503)."""
        state = sleep_state(pointer)
        model_id = pointer.get("liveModelId")
        now = self.clock()
        attempt = int(pointer.get("wakeAttempt") or 0)
        stale = records.iso(now - self.settings.wake_timeout_s)
        if state == WAKING and str(pointer.get("wakeRequestedAt", "")) >= stale:
            raise self._waking(pointer, started=False)
        if self._claim(model_id, attempt, stale, now):
            self._start(pointer, attempt + 1)
            raise self._waking(pointer, started=True)
        raise self._waking(pointer, started=False)  # another request claimed it first

    def _claim(self, model_id: Any, attempt: int, stale: str, now: float) -> bool:
        same_attempt = "wakeAttempt = :attempt" if attempt else "(attribute_not_exists(wakeAttempt) OR wakeAttempt = :attempt)"
        return records.update_if(
            self.clients.dynamodb,
            TableName=self.settings.registry_table, Key=records.key("modelId", LIVE_POINTER_ID),
            UpdateExpression="SET endpointState = :waking, wakeAttempt = :next, wakeRequestedAt = :now",
            ConditionExpression=(f"liveModelId = :model AND {same_attempt} AND (endpointState IN (:asleep, :failed) "
                                 "OR (endpointState = :waking AND wakeRequestedAt < :stale))"),
            ExpressionAttributeValues=records.to_item({
                ":waking": WAKING, ":asleep": ASLEEP, ":failed": WAKE_FAILED, ":model": model_id,
                ":attempt": attempt, ":next": attempt + 1, ":now": records.iso(now), ":stale": stale,
            }),
        ) is not None

    def _start(self, pointer: dict[str, Any], attempt: int) -> None:
        episode = str(pointer.get("sleepEpisode") or "unknown")
        name = f"wake-{episode}-{attempt}"[:80]
        try:
            self.clients.stepfunctions.start_execution(
                stateMachineArn=self.settings.deploy_state_machine_arn, name=name,
                input=json.dumps({"modelId": pointer["liveModelId"], "wake": True}),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                return
            # Not started: hand the claim back so that the next request tries again.
            self.clients.dynamodb.update_item(
                TableName=self.settings.registry_table, Key=records.key("modelId", LIVE_POINTER_ID),
                UpdateExpression="SET endpointState = :asleep",
                ConditionExpression="endpointState = :waking AND wakeAttempt = :attempt",
                ExpressionAttributeValues=records.to_item({":asleep": ASLEEP, ":waking": WAKING,
                                                           ":attempt": attempt}),
            )
            code = error.response.get("Error", {}).get("Code", "error")
            raise Unavailable(f"endpoint {self.settings.endpoint_name} is asleep and its wake-up could not be "
                              f"started ({code}); nothing was generated, try again", retry_after_s=5) from None

    def _waking(self, pointer: dict[str, Any], *, started: bool) -> EndpointWaking:
        since = pointer.get("asleepSince")
        asleep = f" (asleep since {since}, after {self.settings.idle_text()} without use)" if since else ""
        verb = "is now waking up" if started else "is waking up"
        return EndpointWaking(
            f"endpoint {self.settings.endpoint_name}{asleep} {verb}: this takes {WAKE_DURATION_TEXT}; "
            f"nothing was generated, send the request again after Retry-After seconds "
            f"(GET /status shows endpoint.state)")
