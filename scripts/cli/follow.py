"""Following the pipeline through the API: a new dataset until its model is live, a switch of the live
model until it serves. Polls GET /models and GET /status (docs/api.md); prints each phase change with
the elapsed time; ends live, failed (with the registry's reason) or timed out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from dreambooth_shared.contract import (
    STATUS_DEPLOYING,
    STATUS_FAILED,
    STATUS_LIVE,
    STATUS_RETIRED,
    STATUS_TRAINING,
    STATUS_VALIDATING,
)
from scripts.cli.api_client import ApiClient, ApiError, ApiUnreachable

WAITING = "waiting"  # uploaded; the pipeline waits for quiet, then snapshots (no registry item yet)
LIVE, FAILED, RETIRED = STATUS_LIVE, STATUS_FAILED, STATUS_RETIRED
# Transient answers while following: keep polling (API Gateway throttling, busy backing service).
_TRANSIENT = (429, 500, 502, 503, 504)


class Clock:
    """Time and sleep, one object so tests can run the waits on virtual time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class Outcome:
    ok: bool
    phase: str
    elapsed_s: float
    model: Optional[dict[str, Any]] = None
    reason: str = ""
    phases: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "phase": self.phase,
            "elapsed_s": round(self.elapsed_s, 1),
            "model": self.model,
            "reason": self.reason,
            "phases": self.phases,
        }


def elapsed_text(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


_PHASE_TEXT = {
    WAITING: "uploaded; the pipeline starts once no file has arrived for its quiet window (quietWindowSeconds)",
    STATUS_VALIDATING: "checking the dataset",
    STATUS_TRAINING: "training on SageMaker (takes minutes; at most trainingMaxRuntimeMinutes)",
    STATUS_DEPLOYING: "deploying to the endpoint (the previous model keeps serving)",
    LIVE: "live",
    FAILED: "failed",
    RETIRED: "retired (another model is live)",
}


class Follower:
    def __init__(self, client: ApiClient, *, timeout_s: float, poll_s: float, clock: Clock, say: Callable[[str], None]):
        self.client, self.timeout_s, self.poll_s, self.clock, self.say = client, timeout_s, poll_s, clock, say
        self.started = clock.monotonic()
        self.phases: list[dict[str, Any]] = []

    def _elapsed(self) -> float:
        return self.clock.monotonic() - self.started

    def _phase(self, phase: str, detail: str = "") -> None:
        if self.phases and (self.phases[-1]["phase"], self.phases[-1]["detail"]) == (phase, detail):
            return
        elapsed = self._elapsed()
        self.phases.append({"phase": phase, "detail": detail, "elapsed_s": round(elapsed, 1)})
        text = _PHASE_TEXT.get(phase, phase)
        self.say(f"[{elapsed_text(elapsed):>7}] {text}{' - ' + detail if detail else ''}")

    def _outcome(self, ok: bool, phase: str, model: Optional[dict], reason: str = "") -> Outcome:
        return Outcome(ok, phase, self._elapsed(), model, reason, self.phases)

    def _poll(self, observe: Callable[[], Optional[Outcome]], waiting_phase: str) -> Outcome:
        while True:
            try:
                outcome = observe()
            except ApiError as error:
                if error.status not in _TRANSIENT:
                    raise
                self.say(f"[{elapsed_text(self._elapsed()):>7}] API answered {error.status}: {error.message}; retrying")
                outcome = None
            except ApiUnreachable as error:
                self.say(f"[{elapsed_text(self._elapsed()):>7}] API not reachable ({error}); retrying")
                outcome = None
            if outcome is not None:
                return outcome
            remaining = self.timeout_s - self._elapsed()
            if remaining <= 0:
                last = self.phases[-1]["phase"] if self.phases else waiting_phase
                return self._outcome(
                    False,
                    last,
                    None,
                    f"timed out after {elapsed_text(self._elapsed())} while {last}; the pipeline "
                    "goes on without the CLI: check with `dreambooth status`",
                )
            self.clock.sleep(min(self.poll_s, remaining))

    def _endpoint_detail(self, model: dict[str, Any]) -> str:
        if model.get("status") != STATUS_DEPLOYING:
            return ""
        endpoint = (self.client.status() or {}).get("endpoint") or {}
        return f"endpoint {endpoint.get('state', 'unknown')}" if endpoint else ""

    def training(self, dataset: str, known_model_ids: set[str]) -> Outcome:
        """From an upload until the dataset's new model is live, or failed."""
        self._phase(WAITING)

        def observe() -> Optional[Outcome]:
            models = self.client.models().get("models", [])
            new = [m for m in models if m.get("dataset") == dataset and m.get("model_id") not in known_model_ids]
            if not new:
                return None
            model = max(new, key=lambda m: (m.get("created_at", ""), m["model_id"]))
            return self._judge(model, previous_update=None)

        return self._poll(observe, WAITING)

    def switch(self, model_id: str, before: Optional[dict[str, Any]]) -> Outcome:
        """After PUT /models/live: until the model is live on an in-service endpoint, or failed anew."""
        previous_update = (before or {}).get("updated_at")

        def observe() -> Optional[Outcome]:
            return self._judge(self.client.model(model_id), previous_update)

        return self._poll(observe, "deploying")

    def _judge(self, model: dict[str, Any], previous_update: Optional[str]) -> Optional[Outcome]:
        status = model.get("status", "unknown")
        label = f"model {model.get('model_id')}"
        if status == FAILED:
            # A model that had failed before the switch only counts once the registry changed it again.
            if previous_update is not None and model.get("updated_at") == previous_update:
                return None
            self._phase(FAILED, label)
            return self._outcome(False, FAILED, model, model.get("failure_reason") or "the pipeline gave no reason")
        if status == LIVE and model.get("live"):
            endpoint = (self.client.status() or {}).get("endpoint") or {}
            if endpoint.get("state") == "in_service":
                self._phase(LIVE, label)
                return self._outcome(True, LIVE, model)
            self._phase("deploying", f"{label}, endpoint {endpoint.get('state', 'unknown')}")
            return None
        detail = self._endpoint_detail(model)
        self._phase(status, label + (f", {detail}" if detail else ""))
        return None
