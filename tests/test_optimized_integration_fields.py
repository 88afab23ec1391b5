"""Step Functions will accept every field the state machines send through an optimized integration.

Optimized integrations validate their Parameters when the state machine is created; a field their
schema lacks fails the deploy, which no emulator sees. Every such field in every state machine of
the synthesized variants (training on spot and on demand, a created and a reused bucket) must be
vouched for in tests/optimized_integration_fields.py.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

import pytest

from emulator.synthesis import synth
from tests.optimized_integration_fields import ALLOWED
from tests.template_find import of_type, states

VARIANTS = {
    "spot": {},
    "on-demand": {"spotTraining": False},
    "reused-bucket": {"bucketName": "existing-photos-bucket"},
}
INTEGRATION = re.compile(r":states:::(?!aws-sdk:)(.+)$")


def fields(value: Any, path: str = "") -> Iterator[str]:
    """The paths of `value`'s fields: parts joined by dots, `[]` after a list, `X.$` as `X` (a leaf)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            name = key[:-2] if key.endswith(".$") else key
            child = f"{path}.{name}" if path else name
            if key.endswith(".$") or not isinstance(inner, (dict, list)):
                yield child
            else:
                yield from fields(inner, child)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                yield from fields(item, path + "[]")
            else:
                yield path


def pattern(allowed: str) -> re.Pattern[str]:
    integration, _, path = allowed.rpartition(":")
    parts = [r"[^.]+" if p == "*" else r".+" if p == "**" else re.escape(p) for p in path.split(".")]
    return re.compile(re.escape(integration + ":") + r"\.".join(parts))


PATTERNS = {allowed: pattern(allowed) for allowed in ALLOWED}


def optimized_fields(template: dict[str, Any]) -> dict[str, set[str]]:
    """{"<integration>:<path>": {state names sending it}} for every optimized-integration Task."""
    sent: dict[str, set[str]] = {}
    for machine in of_type(template["Resources"], "AWS::StepFunctions::StateMachine").values():
        for name, state in _named_states(states(machine)):
            match = INTEGRATION.search(str(state.get("Resource", ""))) if state.get("Type") == "Task" else None
            if match:
                for path in fields(state.get("Parameters", {})):
                    sent.setdefault(f"{match.group(1)}:{path}", set()).add(name)
    return sent


def _named_states(top: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in top.items():
        yield name, state
        nested = [b["States"] for b in state.get("Branches", [])]
        if "Iterator" in state or "ItemProcessor" in state:
            nested.append((state.get("Iterator") or state["ItemProcessor"])["States"])
        for inner in nested:
            yield from _named_states(inner)


def unvouched(sent: dict[str, set[str]]) -> dict[str, set[str]]:
    return {field: names for field, names in sent.items() if not any(p.fullmatch(field) for p in PATTERNS.values())}


@pytest.fixture(scope="module", params=VARIANTS)
def template(request):
    return json.loads(synth(VARIANTS[request.param]).template_file.read_text())


def test_every_field_sent_through_an_optimized_integration_is_vouched_for(template):
    sent = optimized_fields(template)
    assert sent, "no optimized-integration task found"
    assert not unvouched(sent), (
        "fields no source vouches for (Step Functions may refuse the state machine): "
        f"{json.dumps({k: sorted(v) for k, v in unvouched(sent).items()}, indent=1)}; add the source to "
        "tests/optimized_integration_fields.py, or use the aws-sdk: integration, or avoid the field"
    )


def test_the_fields_found_before_the_review_are_gone_or_moved():
    # The two fields the first-contact review named: CreateModel now goes through aws-sdk:, and the
    # training output is SageMaker's default tarball.
    sent = optimized_fields(json.loads(synth().template_file.read_text()))
    assert not [f for f in sent if f.startswith("sagemaker:createModel:")]
    assert "sagemaker:createTrainingJob.sync:OutputDataConfig.CompressionType" not in sent
    assert unvouched({"sagemaker:createTrainingJob.sync:OutputDataConfig.CompressionType": {"TrainModel"}})
    assert unvouched({"sagemaker:createModel:PrimaryContainer.ModelDataSource.S3DataSource.S3Uri": {"CreateModel"}})


def test_every_entry_names_its_source_and_is_still_needed():
    sent: set[str] = set()
    for context in VARIANTS.values():
        sent |= set(optimized_fields(json.loads(synth(context).template_file.read_text())))
    for allowed, source in ALLOWED.items():
        assert len(source) > 20 and ("http" in source or "CDK L2" in source or "AWS (" in source), allowed
    unused = [allowed for allowed, p in PATTERNS.items() if not any(p.fullmatch(f) for f in sent)]
    # KmsKeyId is sent only with a KMS-encrypted output (allowed ahead: CDK's task emits it).
    assert unused in ([], ["sagemaker:createTrainingJob.sync:OutputDataConfig.KmsKeyId"]), unused
