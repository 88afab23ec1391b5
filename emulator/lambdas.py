"""Lambda functions run in-process: what the harness knows of each function, one asynchronous
invocation, the context object handlers receive, and each invocation's own Powertools metrics."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional
from unittest import mock

from emulator.account import ACCOUNT, REGION


@dataclass
class FunctionSpec:
    name: str
    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    source: str = "intake"
    """The capability (lambda/<capability>) the function's code comes from."""
    role: str = ""
    """Logical id of the function's execution role (its calls are signed as that role)."""
    module: Any = None
    invocations: int = 0


@dataclass
class AsyncInvocation:
    """One InvocationType=Event invocation, run on a background thread as Lambda would."""

    function: str
    payload: Any
    started: datetime
    finished: Optional[datetime] = None
    result: Any = None
    error: Optional[str] = None
    """Lambda's error answer (errorType: errorMessage) when the function raised."""


class LambdaContext:
    def __init__(self, spec: FunctionSpec):
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{spec.name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = "harness"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


class _PerThread(MutableMapping):
    """A dict of the calling thread's own (one Lambda invocation runs on one thread here)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _data(self) -> dict[str, Any]:
        if not hasattr(self._local, "data"):
            self._local.data = {}
        return self._local.data

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data()[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data()))

    def __len__(self) -> int:
        return len(self._data())


def separate_metric_sets(stack: ExitStack) -> None:
    """Powertools keeps one metric set per process (class attributes of `Metrics`, shared by every
    instance). On Lambda each function runs in its own process, one invocation at a time; here all
    functions share one, and concurrent invocations (the API and the result function, two SNS
    notices) would add to and flush one set at once (`dictionary changed size during iteration`, and
    one invocation's metrics in another's EMF record). Each invocation's thread gets its own set."""
    from aws_lambda_powertools.metrics.metrics import Metrics

    for name in ("_metrics", "_dimensions", "_metadata"):
        stack.enter_context(mock.patch.object(Metrics, name, _PerThread()))
