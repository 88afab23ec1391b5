"""The stack's outputs: fixed, documented names only, per auth mode, as the CLI and docs/deploying.md name them."""

from __future__ import annotations

import re

import pytest
from aws_cdk.assertions import Match, Template

from stacks import outputs
from tests.conftest import ROOT, synth_stack


@pytest.fixture(scope="module")
def iam_template():
    return Template.from_stack(synth_stack({"apiAuth": "iam"}))


@pytest.fixture(scope="module")
def key_template(created_stack):
    return Template.from_stack(created_stack)


def _rest_api_id(template: Template) -> str:
    return next(iter(template.find_resources("AWS::ApiGateway::RestApi")))


def documented_outputs() -> dict[str, str]:
    """docs/deploying.md's "Stack outputs" table: output name -> auth mode ("both", "apiKey" or "iam")."""
    document = (ROOT / "docs/deploying.md").read_text()
    section = document.split("## Stack outputs", 1)[1].split("\n## ", 1)[0]
    return {name: mode for name, mode in re.findall(r"^\| `(\w+)` \| .+? \| `?(\w+)`? \|$", section, re.M)}


def test_the_docs_document_exactly_the_names_the_cli_knows():
    assert set(documented_outputs()) == set(outputs.ALL)


@pytest.mark.parametrize("mode", ["apiKey", "iam"])
def test_the_template_has_exactly_the_documented_outputs(mode, key_template, iam_template):
    template = key_template if mode == "apiKey" else iam_template
    documented = {name for name, modes in documented_outputs().items() if modes in ("both", mode)}
    # Nothing else: no hashed ids (ApiEndpoint..., MonitoringDashboardName...) beside the documented ones
    assert set(template.find_outputs("*")) == documented


def test_api_key_mode_outputs_the_bucket_url_and_key_id_under_stable_names(key_template):
    outputs_ = key_template.find_outputs("*")
    key_id = next(iter(key_template.find_resources("AWS::ApiGateway::ApiKey")))
    assert outputs_["ApiKeyId"]["Value"] == {"Ref": key_id}
    key_template.has_output(
        "ApiUrl", {"Value": {"Fn::Join": ["", Match.array_with([{"Ref": _rest_api_id(key_template)}])]}}
    )
    dashboard = next(iter(key_template.find_resources("AWS::CloudWatch::Dashboard")))
    assert outputs_["DashboardName"]["Value"] == {"Ref": dashboard}


def test_iam_mode_outputs_the_url_and_invoke_policy_and_no_key(iam_template):
    outputs_ = iam_template.find_outputs("*")
    policy_id = next(
        iter(
            iam_template.find_resources(
                "AWS::IAM::ManagedPolicy",
                {
                    "Properties": {
                        "PolicyDocument": {
                            "Statement": Match.array_with([Match.object_like({"Action": "execute-api:Invoke"})])
                        }
                    }
                },
            )
        )
    )
    assert outputs_["InvokePolicyArn"]["Value"] == {"Ref": policy_id}
