"""The stack outputs the CLI finds the deployment by: fixed logical ids, per auth mode."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template

from tests.conftest import synth_stack


@pytest.fixture(scope="module")
def iam_template():
    return Template.from_stack(synth_stack({"apiAuth": "iam"}))


@pytest.fixture(scope="module")
def key_template(created_stack):
    return Template.from_stack(created_stack)


def _rest_api_id(template: Template) -> str:
    return next(iter(template.find_resources("AWS::ApiGateway::RestApi")))


def test_api_key_mode_outputs_the_bucket_url_and_key_id_under_stable_names(key_template):
    outputs = key_template.find_outputs("*")
    assert {"BucketName", "ApiUrl", "ApiKeyId"} <= set(outputs)
    assert "InvokePolicyArn" not in outputs
    key_id = next(iter(key_template.find_resources("AWS::ApiGateway::ApiKey")))
    assert outputs["ApiKeyId"]["Value"] == {"Ref": key_id}
    key_template.has_output("ApiUrl", {"Value": {"Fn::Join": ["", Match.array_with([{"Ref": _rest_api_id(key_template)}])]}})


def test_iam_mode_outputs_the_url_and_invoke_policy_and_no_key(iam_template):
    outputs = iam_template.find_outputs("*")
    assert {"BucketName", "ApiUrl", "InvokePolicyArn"} <= set(outputs)
    assert "ApiKeyId" not in outputs
    policy_id = next(iter(iam_template.find_resources("AWS::IAM::ManagedPolicy", {
        "Properties": {"PolicyDocument": {"Statement": Match.array_with([
            Match.object_like({"Action": "execute-api:Invoke"})])}}})))
    assert outputs["InvokePolicyArn"]["Value"] == {"Ref": policy_id}
