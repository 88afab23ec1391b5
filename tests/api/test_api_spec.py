"""The Lambda's validation and API Gateway's model come from one schema and judge alike.

API Gateway validates with a JSON Schema draft 4 engine; the reference here is the `jsonschema`
package's Draft4Validator run on the very model the construct puts in the template. The one rule
where ECMA-262 (API Gateway) and Python regexes differ, `$` before a trailing newline, is given
ECMA semantics in the reference too, and checked on its own below.
"""

from __future__ import annotations

import os
import re

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.lambda_runtime import API_CODE, load
from stacks.api.construct import api_gateway_model_schema, load_openapi

OPENAPI = load_openapi()
SPEC_EXAMPLES = int(os.environ.get("SPEC_EXAMPLES", "300"))  # 5000 found no disagreement either
spec = load(API_CODE, "spec", {})
errors = spec  # spec.BadRequest is the class spec raises (its own import of errors.py)
endpoint = load(API_CODE, "endpoint", {})


def _ecma_pattern(validator, pattern, instance, schema):
    if isinstance(instance, str) and not re.search(
        pattern.replace("$", r"\Z") if pattern.endswith("$") else pattern, instance
    ):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


ApiGatewayLike = jsonschema.validators.extend(jsonschema.Draft4Validator, {"pattern": _ecma_pattern})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 5000),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 4, 5, 8, 256, 255, 512, 1024, 1032, 25, 26, 7.5, 1.0, 4294967295, 4294967296]),
    st.text(max_size=8),
    st.sampled_from(["", " ", "a", "dog-20261120100000", "-x", "a\n", "a b", "x" * 1001]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=3), scalars, max_size=2))


# Values each field accepts, mixed with arbitrary ones, so that both verdicts come up often.
VALID = {
    "prompt": st.sampled_from(["a dog", "x", " a photo of sks dog "]),
    "negative_prompt": st.sampled_from(["", "blurry"]),
    "num_images": st.integers(1, 4),
    "width": st.sampled_from([256, 512, 768, 1024]),
    "height": st.sampled_from([256, 512, 1016]),
    "steps": st.integers(1, 150),
    "guidance_scale": st.floats(0, 30),
    "seed": st.integers(0, 2**32 - 1),
    "model_id": st.sampled_from(["dog-20261120100000", "a.b_c"]),
    "wait": st.integers(0, 25),
}


def bodies(name: str):
    properties = OPENAPI["components"]["schemas"][name]["properties"]
    fields = {key: st.one_of(VALID[key], values) for key in properties}
    required = OPENAPI["components"]["schemas"][name].get("required", [])
    objects = st.fixed_dictionaries(
        {k: fields[k] for k in required},
        optional={**{k: v for k, v in fields.items() if k not in required}, "extra": values},
    )
    return st.one_of(objects, st.dictionaries(st.sampled_from([*properties, "extra"]), values, max_size=6), values)


def lambda_accepts(name: str, body) -> bool:
    try:
        spec.validate(name, body)
    except errors.BadRequest:
        return False
    return True


@pytest.mark.parametrize("name", ["GenerationRequest", "SwitchLiveRequest"])
def test_lambda_and_api_gateway_model_agree(name):
    model = api_gateway_model_schema(OPENAPI, name)
    ApiGatewayLike.check_schema(model)
    reference = ApiGatewayLike(model)

    seen = set()

    @settings(max_examples=SPEC_EXAMPLES, deadline=None, database=None)
    @given(body=bodies(name))
    def agree(body):
        verdict = lambda_accepts(name, body)
        seen.add(verdict)
        assert verdict == reference.is_valid(body), body

    agree()
    assert seen == {True, False}  # both verdicts were exercised


def test_each_bad_field_is_named_once_per_rule():
    with pytest.raises(errors.BadRequest) as caught:
        spec.validate("GenerationRequest", {"num_images": 9, "width": 100, "extra": 1})
    assert [(f.field, f.message) for f in caught.value.fields] == [
        ("prompt", "is required"),
        ("extra", "is not an allowed field"),
        ("num_images", "must be at most 4"),
        ("width", "must be at least 256"),
        ("width", "must be a multiple of 8"),
    ]


def test_dollar_does_not_match_before_a_trailing_newline():
    assert lambda_accepts("SwitchLiveRequest", {"model_id": "dog-1"})
    assert not lambda_accepts("SwitchLiveRequest", {"model_id": "dog-1\n"})


def test_a_schema_keyword_the_validator_does_not_implement_fails_loudly(monkeypatch):
    schemas = spec.SPEC["components"]["schemas"]
    monkeypatch.setitem(schemas, "Odd", {"type": "object", "properties": {"x": {"type": "string", "format": "uuid"}}})
    with pytest.raises(ValueError, match="format"):
        spec.validate("Odd", {"x": "y"})


def test_request_schemas_use_only_implemented_keywords():
    for name in ("GenerationRequest", "SwitchLiveRequest"):
        for keyword_set in _keywords(OPENAPI["components"]["schemas"][name]):
            assert keyword_set <= spec.CHECKED_KEYWORDS | spec.ANNOTATIONS


def _keywords(schema):
    yield set(schema)
    for sub in schema.get("properties", {}).values():
        yield from _keywords(sub)
    if isinstance(schema.get("items"), dict):
        yield from _keywords(schema["items"])


def test_defaults_come_from_the_document():
    assert spec.defaults("GenerationRequest") == {
        "num_images": 1,
        "width": 512,
        "height": 512,
        "steps": 50,
        "guidance_scale": 7.5,
        "wait": 0,
    }


def test_endpoint_state_is_cached_briefly_then_described_again():
    calls = []

    class Describe:
        def describe_endpoint(self, EndpointName):
            calls.append(EndpointName)
            return {"EndpointStatus": "Creating" if len(calls) == 1 else "InService"}

    now = [100.0]
    watcher = endpoint.EndpointWatcher(lambda: Describe(), "ep", ttl_s=5, clock=lambda: now[0])
    assert watcher.state().state == "creating"
    now[0] += 4
    assert watcher.state().state == "creating" and len(calls) == 1
    now[0] += 2
    assert watcher.state().state == "in_service" and len(calls) == 2
    assert watcher.state(fresh=True).state == "in_service" and len(calls) == 3


def test_the_serving_config_is_described_afresh_unless_a_recent_answer_said_in_service():
    answers = [("Updating", "old"), ("InService", "new"), ("Updating", "new"), ("InService", "newer")]
    calls = []

    class Describe:
        def describe_endpoint(self, EndpointName):
            status, config = answers[len(calls)]
            calls.append(status)
            return {"EndpointStatus": status, "EndpointConfigName": config}

    now = [100.0]
    watcher = endpoint.EndpointWatcher(lambda: Describe(), "ep", ttl_s=5, clock=lambda: now[0])
    # While the endpoint updates, the serving config may change at any moment: asked every time
    assert watcher.serving_config() == "old" and watcher.serving_config() == "new" and len(calls) == 2
    # A recent InService answer stands for the TTL (an update started since moves traffic minutes later)
    now[0] += 4
    assert watcher.serving_config() == "new" and len(calls) == 2
    now[0] += 2
    assert watcher.serving_config() == "new" and len(calls) == 3  # expired: described, now Updating
    assert watcher.serving_config() == "newer" and len(calls) == 4  # Updating is never reused
