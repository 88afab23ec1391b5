"""Lambda functions run in-process: what the harness knows of each function, one asynchronous
invocation, and the context object handlers receive."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

from tests.harness.account import ACCOUNT, REGION


@dataclass
class FunctionSpec:
    name: str
    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    source: str = "intake"
    """The capability (stacks/<unit>/runtime) the function's code comes from."""
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
