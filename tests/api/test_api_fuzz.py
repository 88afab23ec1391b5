"""Fuzz the API against its own OpenAPI document (schemathesis), through the API Gateway adapter.

The document is loaded from the running handler (GET /openapi.json). Every operation gets valid
(positive) and invalid (negative) cases; each answer must conform to the document (status code,
content type, headers, body schema), never be a 5xx, and never come from an unhandled exception
(the handler's catch-all would turn one into a 500, which the checks reject). The usage plan's key
check is API Gateway's job (asserted in test_api_infra.py), so `ignored_auth` is not run here.
Schemathesis leaves out the operation that served the document (GET /openapi.json); the handler
tests check that it serves the committed file byte for byte.
"""

from __future__ import annotations

import json
import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import create_endpoint, jumpstart_answer, tiny_jpeg

EXAMPLES_PER_MODE = int(os.environ.get("API_FUZZ_EXAMPLES", "100"))
MIN_CASES = 500
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def fuzz(operation, mode, count):
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        count()
        response = case.call()
        assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text)
        case.validate_response(response, checks=checks)

    return run


def test_fuzz_every_operation_against_the_openapi_document(harness, monkeypatch):
    # Given a live model on an in-service endpoint that answers with JPEGs
    model = harness.live_model("dog-20261120100000")
    harness.put_model("cat-20261121000000", status="retired")
    harness.put_model("cow-20261122000000", status="training")
    create_endpoint(model)
    harness.queue_results(*[jumpstart_answer(tiny_jpeg())] * 50)
    # Waiting is exercised elsewhere; here it would only slow each case down.
    monkeypatch.setattr(harness.api_module.generations, "sleep", lambda _s: None)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", harness.api.wsgi_app)
    # The x-api-key header is checked by API Gateway before the Lambda runs (test_api_infra.py):
    # the adapter does not pretend to, so negative cases must not count a missing key as bad input.
    schema.config.generation.update(with_security_parameters=False)
    unhandled: list[str] = []
    harness.api_module.logger.exception = lambda msg, *a, **k: unhandled.append(msg)

    counts: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        negatable = bool(operation.definition.raw.get("parameters") or operation.body)
        for mode in GenerationMode if negatable else [GenerationMode.POSITIVE]:
            label = f"{operation.label} [{mode.value}]"
            counts[label] = 0
            fuzz(operation, mode, lambda label=label: counts.__setitem__(label, counts[label] + 1))()

    # Then no case hit an unhandled exception, every operation was fuzzed, and enough cases ran
    assert unhandled == []
    operations = {f"{m.upper()} {p}" for p, ops in schema.raw_schema["paths"].items() for m in ops} - {
        "GET /openapi.json"
    }
    assert {label.split(" [")[0] for label, n in counts.items() if n} == operations, counts
    assert sum(counts.values()) >= MIN_CASES, counts
    print(f"fuzz: {sum(counts.values())} cases", counts)


# ---- hostile input on every route: text that is not valid Unicode, huge numbers, deep nesting ----

HOSTILE_EXAMPLES_PER_ROUTE = int(os.environ.get("API_FUZZ_HOSTILE_EXAMPLES", "100"))
MIN_HOSTILE_CASES = 1000
_LONE = st.sampled_from(["\\ud83d", "\\udc00", "\\udfff", "\\ud800\\ud800", "a\\ud83d", "\\ud83d\\ude00"])
_HUGE = st.one_of(
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),
    st.sampled_from(
        [
            "1e400",
            "-1e400",
            "1e-400",
            "4294967296",
            "4294967295.0",
            "-0",
            "1" + "0" * 5000 + ".5",
            "123456789012345678901234567890",
        ]
    ),
)


def _json_text(value) -> str:
    return json.dumps(value, ensure_ascii=True)


def _hostile_scalar():
    return st.one_of(
        _LONE.map(lambda s: f'"{s}"'),
        _HUGE,
        st.text(max_size=30).map(_json_text),
        st.sampled_from(["null", "true", "false", '""', "[]", "{}"]),
    )


def _nested(depth: int, leaf: str, kind: str) -> str:
    return ('{"a":' * depth + leaf + "}" * depth) if kind == "object" else ("[" * depth + leaf + "]" * depth)


_FIELDS = st.sampled_from(
    [
        "prompt",
        "negative_prompt",
        "num_images",
        "width",
        "height",
        "steps",
        "guidance_scale",
        "seed",
        "model_id",
        "wait",
        "\\ud83d",
        "x" * 300,
    ]
)
_BODIES = st.one_of(
    # an object whose fields hold hostile values (with a usable prompt half of the time)
    st.tuples(st.dictionaries(_FIELDS, _hostile_scalar(), max_size=5), st.booleans()).map(
        lambda pair: (
            "{"
            + ",".join(
                ([] if not pair[1] or "prompt" in pair[0] else ['"prompt":"a dog"'])
                + [f'"{k}":{v}' for k, v in pair[0].items()]
            )
            + "}"
        )
    ),
    # deep nesting, as a field's value or as the whole body
    st.tuples(st.integers(1, 20000), st.sampled_from(["object", "list"]), _hostile_scalar(), st.booleans()).map(
        lambda t: ('{"prompt":"a dog","seed":' + _nested(t[0], t[2], t[1]) + "}") if t[3] else _nested(t[0], t[2], t[1])
    ),
    _hostile_scalar(),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.none(),
)
_IDS = st.one_of(
    st.sampled_from(
        ["dog-20261120100000", "cat-20261121000000", "__live__", "%ED%A0%BD", "%00", "a" * 300, "..", "%2F", "9" * 400]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"), min_size=1, max_size=40),
)


def _routes(schema_paths: dict) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, operations in schema_paths.items() for method in operations]


def test_hostile_input_on_every_route_never_gets_a_5xx(harness, monkeypatch):
    # Given a live model, models in other states (one failed for a transient reason), and an endpoint
    model = harness.live_model("dog-20261120100000")
    harness.put_model(
        "cat-20261121000000",
        status="failed",
        retryable={"BOOL": True},
        failureReason={"S": "training failed: CapacityError"},
    )
    harness.put_model("cow-20261122000000", status="training")
    create_endpoint(model)
    harness.queue_results(*[jumpstart_answer(tiny_jpeg())] * 50)
    monkeypatch.setattr(harness.api_module.generations, "sleep", lambda _s: None)
    unhandled: list[str] = []
    harness.api_module.logger.exception = lambda msg, *a, **k: unhandled.append(msg)
    spec_paths = json.loads(harness.api.call("GET", "/openapi.json").text)["paths"]
    counts: dict[str, int] = {}

    def fuzz_route(method: str, template: str):
        label = f"{method} {template}"
        counts[label] = 0

        @settings(
            max_examples=HOSTILE_EXAMPLES_PER_ROUTE,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(body=_BODIES, identifier=_IDS)
        def run(body, identifier):
            counts[label] += 1
            path = template.replace("{id}", identifier)
            answer = harness.api.call(method, path, body if method in ("POST", "PUT") else None)
            assert answer.status < 500, (method, path, body and body[:200], answer.text)
            if answer.status >= 400:
                error = answer.json()["error"]
                assert error["code"] and error["message"]
                answer.text.encode("utf-8")

        return run

    for method, template in _routes(spec_paths):
        fuzz_route(method, template)()

    # Then no case hit an unhandled exception, every route was fuzzed, and enough cases ran
    assert unhandled == []
    assert all(count > 0 for count in counts.values()), counts
    assert sum(counts.values()) >= MIN_HOSTILE_CASES, counts
    print(f"hostile fuzz: {sum(counts.values())} cases", counts)
