"""Service limits no emulator enforces, enforced on the harness (see ../shared/TOOLING.md).

AWS refuses or kills what moto lets through:
- Step Functions: a state's input or output over 256 KiB fails the execution with
  `States.DataLimitExceeded`; an execution may have at most 25,000 history events;
  `States.DataLimitExceeded` and `States.Runtime` (e.g. a JSONPath that is missing) are not
  matched by `States.ALL` in a Catch or Retry, so they end the execution whatever it catches.
  moto checks the 256 KiB itself but lets `States.ALL` catch both errors, and has no event limit.
- Lambda: a synchronous invocation's request and response may be at most 6 MB each, an
  asynchronous (Event) invocation's request at most 256 KiB.

`ServiceLimits.install(stack)` patches moto's interpreter so that `States.ALL` matches as AWS
matches, and counts every execution's history events as they are written: past 25,000 the
execution fails (as a terminal error) and a violation is recorded. `check_history` reads a
finished execution's history and records every state input/output (and execution input/output)
over 256 KiB, and an execution ended by one of the terminal errors. The harness calls `check_lambda_request` / `check_lambda_response` around every
in-process invocation. Violations collect in `violations`; `raise_if_violated()` turns them into
a test failure that names the execution or function, the state and the size.
"""

from __future__ import annotations

import json
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional
from unittest import mock

STATE_LIMIT_BYTES = 256 * 1024
HISTORY_EVENT_LIMIT = 25_000
LAMBDA_SYNC_LIMIT_BYTES = 6 * 1024 * 1024
LAMBDA_ASYNC_LIMIT_BYTES = 256 * 1024
TERMINAL_ERRORS = ("States.DataLimitExceeded", "States.Runtime")
"""Errors that `States.ALL` does not match (AWS Step Functions developer guide, "Error names")."""

# History event detail fields that carry state data (JSON text).
_DATA_FIELDS = ("input", "output", "parameters")
_FINAL_EVENTS = ("ExecutionFailed", "ExecutionSucceeded", "ExecutionAborted", "ExecutionTimedOut")


class ServiceLimitExceeded(AssertionError):
    """A run did something AWS would refuse (see `ServiceLimits.violations`)."""


class HistoryLimitExceeded(RuntimeError):
    """Raised inside moto's interpreter: the execution has written more than 25,000 events."""


@dataclass(frozen=True)
class Violation:
    kind: str  # "state-size", "history-events", "terminal-error", "lambda-request", "lambda-response"
    where: str  # execution name or function name
    detail: str  # the state and field, or the invocation type
    size: int
    limit: int
    cause: str = ""  # terminal-error: the execution's cause, shortened

    def __str__(self) -> str:
        if self.kind == "terminal-error":
            because = f" (cause: {self.cause})" if self.cause else ""
            return f"{self.kind}: {self.where}: {self.detail}{because} (no Catch can intercept it)"
        return f"{self.kind}: {self.where}: {self.detail}: {self.size} > {self.limit}"


def utf8_size(value: Any) -> int:
    """Bytes of a value as Step Functions and Lambda count it (compact JSON, UTF-8)."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8"))


@dataclass
class ServiceLimits:
    state_limit: int = STATE_LIMIT_BYTES
    event_limit: int = HISTORY_EVENT_LIMIT
    violations: list[Violation] = field(default_factory=list)
    largest_state: tuple[int, str, str] = (0, "", "")
    """(bytes, execution, state) of the largest state data seen by `check_history`."""
    most_events: tuple[int, str] = (0, "")
    """(events, execution) of the longest history seen by `check_history`."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    # ---- moto's interpreter ----

    def install(self, stack: ExitStack) -> "ServiceLimits":
        from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
        from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

        def error_equals(decl: Any, env: Any) -> None:
            error_name = env.stack.pop()
            names = [n.error_name for n in decl.error_names]
            name = error_name.error_name if error_name is not None else None
            if isinstance(error_name, StatesErrorName) and name in TERMINAL_ERRORS:
                env.stack.append(name in names)  # only a catcher that names it explicitly
                return
            env.stack.append(error_name)
            original_error_equals(decl, env)

        original_error_equals = ErrorEqualsDecl._eval_body
        # Everything else matches as moto implements it (States.ALL, States.TaskFailed, names).
        stack.enter_context(mock.patch.object(ErrorEqualsDecl, "_eval_body", error_equals))

        # A JSONPath that is missing (Parameters, ResultSelector) is States.Runtime in AWS; moto's
        # service tasks turn it, and their own DataLimitExceeded, into a catchable service error
        # (e.g. DynamoDB.AmazonDynamoDBException). Every task reports them as AWS does.
        for state_class in _execution_state_classes():
            if "_from_error" in vars(state_class):
                stack.enter_context(
                    mock.patch.object(state_class, "_from_error", _terminal_first(vars(state_class)["_from_error"]))
                )

        limits = self
        original_add_event = EventManager.add_event

        def add_event(
            manager: Any, context: Any, event_type: Any, event_details: Any = None, *args: Any, **kwargs: Any
        ) -> int:
            event_id = original_add_event(manager, context, event_type, event_details, *args, **kwargs)
            kind = str(getattr(event_type, "value", event_type))
            if event_id > limits.event_limit and kind not in _FINAL_EVENTS:
                if not getattr(manager, "_harness_over_limit", False):
                    manager._harness_over_limit = True
                    limits._record(
                        Violation(
                            "history-events",
                            "a running execution (its history names it)",
                            f"event {event_id} ({kind})",
                            event_id,
                            limits.event_limit,
                        )
                    )
                # AWS ends the execution: the interpreter turns this into an ExecutionFailed.
                raise HistoryLimitExceeded(f"more than {limits.event_limit} history events")
            return event_id

        stack.enter_context(mock.patch.object(EventManager, "add_event", add_event))
        return self

    # ---- histories ----

    def check_history(self, execution: str, events: Iterable[Mapping[str, Any]]) -> list[Violation]:
        """Every state's input and output (and the execution's) against 256 KiB; the event count."""
        found: list[Violation] = []
        count = 0
        current = "?"  # the state the events belong to: task events do not repeat its name
        for event in events:
            count += 1
            current = event.get("stateEnteredEventDetails", {}).get("name", current)
            failed = event.get("executionFailedEventDetails", {}).get("error")
            if event.get("type") == "ExecutionFailed" and failed in TERMINAL_ERRORS:
                cause = (event.get("executionFailedEventDetails", {}).get("cause") or "")[:300]
                found.append(Violation("terminal-error", execution, f"{failed} in state {current}", 0, 0, cause))
            for key, details in event.items():
                if not key.endswith("EventDetails") or not isinstance(details, Mapping):
                    continue
                for data_field in _DATA_FIELDS:
                    value = details.get(data_field)
                    if not isinstance(value, str):
                        continue
                    size = utf8_size(value)
                    state = event["type"] if event.get("type", "").startswith("Execution") else current
                    with self._lock:
                        if size > self.largest_state[0]:
                            self.largest_state = (size, execution, f"{state}.{data_field}")
                    if size > self.state_limit:
                        found.append(
                            Violation("state-size", execution, f"{state} {data_field}", size, self.state_limit)
                        )
        with self._lock:
            if count > self.most_events[0]:
                self.most_events = (count, execution)
        if count > self.event_limit:
            found.append(Violation("history-events", execution, "history", count, self.event_limit))
        for violation in found:
            self._record(violation)
        return found

    # ---- Lambda payloads ----

    def check_lambda_request(self, function: str, payload: Any, *, asynchronous: bool) -> Optional[Violation]:
        limit = LAMBDA_ASYNC_LIMIT_BYTES if asynchronous else LAMBDA_SYNC_LIMIT_BYTES
        size = utf8_size(payload) if not isinstance(payload, bytes) else len(payload)
        if size <= limit:
            return None
        violation = Violation(
            "lambda-request",
            function,
            "Event invocation" if asynchronous else "RequestResponse invocation",
            size,
            limit,
        )
        self._record(violation)
        return violation

    def check_lambda_response(self, function: str, body: str) -> Optional[Violation]:
        size = len(body.encode("utf-8"))
        if size <= LAMBDA_SYNC_LIMIT_BYTES:
            return None
        violation = Violation("lambda-response", function, "response payload", size, LAMBDA_SYNC_LIMIT_BYTES)
        self._record(violation)
        return violation

    # ---- results ----

    def _record(self, violation: Violation) -> None:
        with self._lock:
            if violation not in self.violations:
                self.violations.append(violation)

    def raise_if_violated(self) -> None:
        if self.violations:
            raise ServiceLimitExceeded(
                "AWS would refuse what this run did:\n" + "\n".join(f"- {v}" for v in self.violations)
            )


def _execution_state_classes() -> list[type]:
    """ExecutionState and every subclass of it (each Task integration), loaded."""
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (  # noqa: F401
        state_task_service_factory,
    )

    found, pending = [], [ExecutionState]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def _terminal_first(original: Any) -> Any:
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
    from moto.stepfunctions.parser.asl.utils.json_path import NoSuchJsonPathError

    base = vars(ExecutionState)["_from_error"]

    def _from_error(state: Any, env: Any, ex: Exception) -> Any:
        if isinstance(ex, NoSuchJsonPathError):
            return base(state, env, ex)  # States.Runtime
        if isinstance(ex, FailureEventException) and ex.failure_event.error_name.error_name in TERMINAL_ERRORS:
            return ex.failure_event
        return original(state, env, ex)

    return _from_error
