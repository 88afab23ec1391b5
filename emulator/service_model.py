"""Every AWS call on the harness checked against botocore's service model, as AWS checks it.

botocore's own client-side validation checks required members, types and minimum lengths, but
not `max` lengths, `pattern`s or `enum`s, and moto's Step Functions interpreter switches it off
(`parameter_validation=False`) for the calls its tasks make. `ServiceModelCheck` wraps
`BaseClient._convert_to_request_dict` (where botocore serializes the parameters, after its
`before-parameter-build` customizations), so every call any client makes while the harness runs (Lambda
handlers, state-machine tasks including `aws-sdk:*` integrations after the harness's field-name
mapping, the simulated SageMaker, the CLI, the tests themselves) is checked against the
operation's input shape:

- botocore's validation (required members, types, `min`), also for the calls moto makes unvalidated;
- `max` for string and blob lengths, list and map sizes, and number values;
- `pattern`s, matched against the whole value (AWS's services match the whole value; the model's
  patterns are mostly anchored at the start only);
- `enum` values.

A violation answers as AWS would (ClientError `ValidationException`, naming the field, its value
and the constraint) and is recorded in `violations`; the harness fails the test at exit for any
violation the test did not `expect()`, so code that catches the error cannot hide it.

Not checked: constraints that are not in the model (cross-field rules, SageMaker's limits on
hyperparameter count or total size, S3 key length in bytes (1,024) which S3's model omits) and
patterns written in Java regex syntax Python's `re` cannot compile (listed in `uncompiled`).
"""

from __future__ import annotations

import re
import threading
from contextlib import ExitStack
from functools import lru_cache
from typing import Any, Optional
from unittest import mock

from botocore.exceptions import ClientError
from botocore.model import Shape
from botocore.validate import ParamValidator


@lru_cache(maxsize=None)
def _compiled(pattern: str) -> Optional[re.Pattern[str]]:
    # Java regex spellings: \p{L} (letters) has no single-token Python form; inside a class, \w
    # covers it with \p{N} and _. A UTF-16 surrogate-pair range is every non-BMP character.
    python = (
        pattern.replace(r"\p{L}", r"\w")
        .replace(r"\p{Z}", r"\s")
        .replace(r"\p{N}", r"\d")
        .replace(r"\p{Print}", r"[\x20-\x7E]")
        .replace(r"\uD800\uDC00-\uDBFF\uDFFF", r"\U00010000-\U0010FFFF")
    )
    try:
        return re.compile(python, re.DOTALL)
    except re.error:
        return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...({len(value) if hasattr(value, '__len__') else '?'} long)"


def violations_of(shape: Shape, value: Any, path: str, uncompiled: Optional[set[str]] = None) -> list[str]:
    """What AWS would refuse in `value` for `shape` beyond botocore's own checks."""
    problems: list[str] = []
    metadata = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member in value.items():
            if name in shape.members:
                problems += violations_of(shape.members[name], member, f"{path}.{name}", uncompiled)
        return problems
    if kind == "list" and isinstance(value, (list, tuple)):
        if "max" in metadata and len(value) > metadata["max"]:
            problems.append(f"{path}: {len(value)} items, more than the maximum {metadata['max']}")
        for index, item in enumerate(value):
            problems += violations_of(shape.member, item, f"{path}[{index}]", uncompiled)
        return problems
    if kind == "map" and isinstance(value, dict):
        if "max" in metadata and len(value) > metadata["max"]:
            problems.append(f"{path}: {len(value)} entries, more than the maximum {metadata['max']}")
        for key, item in value.items():
            problems += violations_of(shape.key, key, f"{path} key {key!r}", uncompiled)
            problems += violations_of(shape.value, item, f"{path}[{key!r}]", uncompiled)
        return problems
    if kind == "string" and isinstance(value, str):
        if "max" in metadata and len(value) > metadata["max"]:
            problems.append(f"{path}: length {len(value)} is more than the maximum {metadata['max']} ({_shown(value)})")
        if "pattern" in metadata:
            compiled = _compiled(metadata["pattern"])
            if compiled is None:
                if uncompiled is not None:
                    uncompiled.add(metadata["pattern"])
            elif compiled.fullmatch(value) is None:
                problems.append(f"{path}: {_shown(value)} does not match the pattern {metadata['pattern']}")
        if shape.enum and value not in shape.enum:
            problems.append(
                f"{path}: {_shown(value)} is not one of {sorted(shape.enum)[:12]}"
                f"{'...' if len(shape.enum) > 12 else ''}"
            )
        return problems
    if kind == "blob" and isinstance(value, (bytes, str)):
        if "max" in metadata and len(value) > metadata["max"]:
            problems.append(f"{path}: {len(value)} bytes, more than the maximum {metadata['max']}")
        return problems
    if (
        kind in ("integer", "long", "float", "double")
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ):
        if "max" in metadata and value > metadata["max"]:
            problems.append(f"{path}: {value} is more than the maximum {metadata['max']}")
    return problems


def check_call(operation_model: Any, params: dict[str, Any], uncompiled: Optional[set[str]] = None) -> list[str]:
    """botocore's validation plus the constraints it skips, for one call."""
    shape = operation_model.input_shape
    if shape is None:
        return []
    problems = []
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        problems += [line.strip() for line in report.generate_report().splitlines() if line.strip()]
    problems += violations_of(shape, params, operation_model.name, uncompiled)
    return problems


class ServiceModelCheck:
    """See the module docstring. Used by `PipelineHarness` (`h.service_model`)."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.calls = 0
        self.uncompiled: set[str] = set()
        self._expected: list[str] = []
        self._lock = threading.Lock()
        self._stack = ExitStack()

    def expect(self, *fragments: str) -> None:
        """The test expects violations whose text contains each fragment."""
        self._expected.extend(fragments)

    def unexpected(self) -> list[str]:
        return [v for v in self.violations if not any(f in v for f in self._expected)]

    def __enter__(self) -> "ServiceModelCheck":
        from botocore.client import BaseClient

        original = BaseClient._convert_to_request_dict
        check = self

        def convert_to_request_dict(
            client: Any, api_params: dict[str, Any], operation_model: Any, *args: Any, **kwargs: Any
        ) -> Any:
            # After botocore's customizations (before-parameter-build), as its serializer sees them.
            problems = check_call(operation_model, api_params, check.uncompiled)
            service = client.meta.service_model.service_name
            with check._lock:
                check.calls += 1
                found = [f"{service}.{operation_model.name}: {p}" for p in problems]
                check.violations += found
            if found:
                raise ClientError(
                    {
                        "Error": {"Code": "ValidationException", "Message": "; ".join(found)},
                        "ResponseMetadata": {"HTTPStatusCode": 400},
                    },
                    operation_model.name,
                )
            return original(client, api_params, operation_model, *args, **kwargs)

        self._stack.enter_context(mock.patch.object(BaseClient, "_convert_to_request_dict", convert_to_request_dict))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()
