"""The committed OpenAPI document and the request validation derived from it.

API Gateway's request models are built from the same `components.schemas` entries (see
stacks/api/construct.py), so the gateway and this module check the same rules. The
request schemas keep to the keywords that JSON Schema draft 4 (API Gateway's dialect) and OpenAPI
3.0 share; `validate` implements exactly those keywords and refuses to run on any other, so a
schema edit that this module cannot honour fails loudly in tests instead of being skipped.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from errors import BadRequest, FieldError

SPEC_PATH = Path(__file__).with_name("openapi.json")
SPEC_TEXT = SPEC_PATH.read_text(encoding="utf-8")
SPEC: dict = json.loads(SPEC_TEXT)

# Keywords a request schema may use. Annotations are allowed and ignored.
CHECKED_KEYWORDS = frozenset(
    {
        "type",
        "required",
        "properties",
        "additionalProperties",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "multipleOf",
        "enum",
        "items",
        "minItems",
        "maxItems",
    }
)
ANNOTATIONS = frozenset({"description", "default", "title", "example"})


def request_schema(name: str) -> dict:
    return SPEC["components"]["schemas"][name]


def defaults(name: str) -> dict[str, Any]:
    """The `default` of every property of a request schema that has one."""
    return {key: prop["default"] for key, prop in request_schema(name)["properties"].items() if "default" in prop}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# Python's int() refuses longer digit strings (a ValueError that would read as "not valid JSON");
# such integers stay exact as Decimals and fail their field's range check like any other number.
_INT_DIGITS = 4000
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _parse_int(literal: str) -> Any:
    return int(literal) if len(literal) <= _INT_DIGITS else Decimal(literal)


def _safe(text: str) -> str:
    """Field names and values for messages and logs: valid UTF-8 (lone surrogates as \\udXXX)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def parse_json(text: str | bytes | None) -> Any:
    """Parse a request body as strict JSON (NaN and Infinity are not JSON)."""
    if text is None or (isinstance(text, (str, bytes)) and not text.strip()):
        raise BadRequest("the request body is empty; send a JSON object", fields=(FieldError("body", "is required"),))
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise BadRequest("the request body is not valid JSON", fields=(FieldError("body", str(error)[:200]),)) from None


@lru_cache(maxsize=64)
def _pattern(pattern: str) -> re.Pattern[str]:
    # ECMA-262 `$` never matches before a trailing newline; Python's does unless told \Z.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _type_ok(expected: str, value: Any) -> bool:
    if isinstance(value, Decimal):  # an integer too long for int(), see _parse_int
        return expected in ("integer", "number")
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    if expected == "null":
        return value is None
    raise ValueError(f"unsupported schema type {expected!r}")


_ARTICLE = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "a JSON object",
    "array": "an array",
    "null": "null",
}


def _multiple_of(value: float, divisor: float) -> bool:
    if isinstance(value, Decimal):
        value = int(value)
    if isinstance(value, int) and isinstance(divisor, int):
        return value % divisor == 0
    quotient = value / divisor
    return math.isfinite(quotient) and quotient == int(quotient)


def _check(schema: dict, value: Any, path: str, errors: list[FieldError]) -> None:
    unknown = set(schema) - CHECKED_KEYWORDS - ANNOTATIONS
    if unknown:
        raise ValueError(f"schema keyword(s) {sorted(unknown)} at {path or '<root>'} are not supported")
    field = _safe(path) if path else "body"
    expected = schema.get("type")
    if expected is not None and not _type_ok(expected, value):
        errors.append(FieldError(field, f"must be {_ARTICLE[expected]}"))
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(FieldError(field, f"must be one of {', '.join(map(str, schema['enum']))}"))
    if isinstance(value, str):
        lone = _LONE_SURROGATE.search(value)
        if lone:
            # JSON may escape half a character ("\ud83d"); no store or model accepts it.
            errors.append(
                FieldError(
                    field,
                    f"is not valid Unicode: it holds a lone surrogate "
                    f"\\u{ord(lone.group()):04x} at character {lone.start() + 1}",
                )
            )
            return
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(FieldError(field, f"must be at least {schema['minLength']} character(s) long"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(FieldError(field, f"must be at most {schema['maxLength']} characters long"))
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            errors.append(FieldError(field, f"must match the pattern {schema['pattern']}"))
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(FieldError(field, f"must be at least {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(FieldError(field, f"must be at most {schema['maximum']}"))
        if "multipleOf" in schema and not _multiple_of(value, schema["multipleOf"]):
            errors.append(FieldError(field, f"must be a multiple of {schema['multipleOf']}"))
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(FieldError(field, f"must have at least {schema['minItems']} item(s)"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(FieldError(field, f"must have at most {schema['maxItems']} items"))
        if "items" in schema:
            for index, item in enumerate(value):
                _check(schema["items"], item, f"{field}[{index}]", errors)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        prefix = f"{path}." if path else ""
        for name in schema.get("required", []):
            if name not in value:
                errors.append(FieldError(prefix + name, "is required"))
        if schema.get("additionalProperties", True) is False:
            for name in sorted(set(value) - set(properties)):
                errors.append(FieldError(_safe(prefix + name), "is not an allowed field"))
        for name, sub in properties.items():
            if name in value:
                _check(sub, value[name], prefix + name, errors)


def validate(name: str, value: Any) -> dict:
    """Return `value` if it satisfies request schema `name`, else raise BadRequest naming every bad field."""
    errors: list[FieldError] = []
    _check(request_schema(name), value, "", errors)
    if errors:
        listing = "; ".join(f"{e.field}: {e.message}" for e in errors[:10])
        raise BadRequest(f"invalid request: {listing}", fields=tuple(errors))
    return value
