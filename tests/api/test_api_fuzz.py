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

import os

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance, negative_data_rejection, not_a_server_error, response_headers_conformance,
    response_schema_conformance, status_code_conformance,
)

from tests.api.conftest import create_endpoint, jumpstart_answer, tiny_jpeg

EXAMPLES_PER_MODE = int(os.environ.get("API_FUZZ_EXAMPLES", "100"))
MIN_CASES = 500
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


def fuzz(operation, mode, count):
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
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

    # Then no case hit an unhandled exception, and enough cases ran
    assert unhandled == []
    assert sum(counts.values()) >= MIN_CASES, counts
    print(f"fuzz: {sum(counts.values())} cases", counts)
