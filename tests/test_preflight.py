"""`dreambooth preflight` against moto, with the Service Quotas moto lacks added by the harness."""

from __future__ import annotations

import json
import re

import boto3
import pytest
from moto import mock_aws

from scripts import cli
from scripts import refresh_jumpstart_lock as jumpstart
from scripts.choose_bucket import BUCKET_QUOTA_CODE
from stacks.training.jumpstart_lock import LOCK_FILE
from tests import jumpstart_fixture
from tests.quota_harness import QuotaHarness


@pytest.fixture
def quotas(monkeypatch):
    return QuotaHarness().install(monkeypatch)


@pytest.fixture(autouse=True)
def jumpstart_metadata(monkeypatch):
    """JumpStart's metadata as the SDK reads it in local mode (tests/fixtures/jumpstart)."""
    jumpstart_fixture.local_metadata(monkeypatch)


@pytest.fixture
def fresh_session():
    """A new account; JumpStart serves the fixture's artifacts in us-east-1."""
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        jumpstart_fixture.publish(session)
        yield session


@pytest.fixture
def session(fresh_session):
    from tests.test_deploy_script import set_logging_role

    set_logging_role(fresh_session)
    return fresh_session


def give_sagemaker(quotas, training=1, endpoint=1, instance="ml.g4dn.2xlarge", spot=1):
    quotas.set("sagemaker", "L-TRAIN", f"{instance} for training job usage", training)
    quotas.set("sagemaker", "L-SPOT", f"{instance} for spot training job usage", spot)
    quotas.set("sagemaker", "L-ENDPOINT", f"{instance} for endpoint usage", endpoint)


def run(session, capsys, *args):
    code = cli.main(["--json", *args, "preflight"], session=session)
    return code, json.loads(capsys.readouterr().out)


def by_name(report):
    return {c["name"]: c for c in report["checks"]}


def test_all_green(session, quotas, capsys):
    quotas.set("s3", BUCKET_QUOTA_CODE, "General purpose buckets", 100)
    give_sagemaker(quotas)
    code, report = run(session, capsys)
    assert code == 0 and report["ok"] is True
    assert set(by_name(report)) == {
        "credentials",
        "region",
        "jumpstart model",
        "s3 bucket",
        "api gateway logging role",
        "bucket encryption",
        "training instance",
        "spot training instance",
        "endpoint instance",
    }


def test_zero_gpu_quota_fails_with_the_fix(session, quotas, capsys):
    give_sagemaker(quotas, training=0)
    code, report = run(session, capsys)
    training = by_name(report)["training instance"]
    assert code == 1 and training["ok"] is False
    assert "ml.g4dn.2xlarge for training job usage" in training["fix"] and "Service Quotas" in training["fix"]
    assert by_name(report)["endpoint instance"]["ok"] is True


def test_the_endpoint_quota_must_cover_the_autoscaling_maximum(session, quotas, capsys):
    give_sagemaker(quotas, endpoint=2)
    code, report = run(session, capsys, "-c", "endpointMaxInstances=3")
    endpoint = by_name(report)["endpoint instance"]
    assert code == 1 and endpoint["ok"] is False and "3 needed" in endpoint["detail"]
    assert "request at least 3" in endpoint["fix"]
    assert run(session, capsys, "-c", "endpointMaxInstances=2")[0] == 0


def test_spot_training_needs_the_spot_quota_and_the_on_demand_one_for_its_retry(session, quotas, capsys):
    give_sagemaker(quotas, spot=0)  # on-demand training quota only
    code, report = run(session, capsys)
    training = by_name(report)["spot training instance"]
    assert code == 1 and training["ok"] is False
    assert "ml.g4dn.2xlarge for spot training job usage" in training["detail"]
    assert by_name(report)["training instance"]["ok"] is True
    assert run(session, capsys, "-c", "spotTraining=false")[0] == 0


def test_instance_type_not_offered_in_region(session, quotas, capsys):
    give_sagemaker(quotas)
    code, report = run(session, capsys, "-c", "endpointInstanceType=ml.p4d.24xlarge")
    endpoint = by_name(report)["endpoint instance"]
    assert code == 1 and "not offered in us-east-1" in endpoint["detail"]
    assert "endpointInstanceType" in endpoint["fix"]


def test_full_bucket_quota_is_reported(session, quotas, capsys):
    quotas.set("s3", BUCKET_QUOTA_CODE, "General purpose buckets", 3)
    give_sagemaker(quotas)
    for i in range(3):
        session.client("s3").create_bucket(Bucket=f"someone-elses-{i}")
    code, report = run(session, capsys)
    bucket = by_name(report)["s3 bucket"]
    assert code == 1 and "3 of 3 buckets" in bucket["detail"] and "bucketName" in bucket["fix"]


def test_region_outside_the_lock_file(quotas, capsys):
    with mock_aws():
        code, report = run(boto3.Session(region_name="af-south-1"), capsys)
    region = by_name(report)["region"]
    # A region problem is the caller's set-up: exit 2, as in every command (docs/cli.md, exit codes)
    assert code == 2 and "not in the JumpStart lock file" in region["detail"]
    assert "us-east-1" in region["fix"]


def test_text_output_is_a_table_with_fixes(session, quotas, capsys):
    give_sagemaker(quotas, endpoint=0)
    assert cli.main(["preflight"], session=session) == 1
    out = capsys.readouterr().out
    assert re.search(r"^endpoint instance +FAIL", out, re.MULTILINE) and "To fix:" in out


def test_bad_configuration_is_a_usage_error(session, capsys):
    assert cli.main(["-c", "trainingInstanceType=ml.t2.micro", "preflight"], session=session) == 2
    assert "trainingInstanceType" in capsys.readouterr().err


def test_every_command_has_help(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["preflight", "--help"])
    assert done.value.code == 0 and "JumpStart lock file" in capsys.readouterr().out


def _reused_bucket_with_customer_key(session, *, key_in_rule=lambda key: key["KeyId"]):
    key = session.client("kms").create_key()["KeyMetadata"]
    s3 = session.client("s3")
    s3.create_bucket(Bucket="photos-kms")
    s3.put_bucket_encryption(
        Bucket="photos-kms",
        ServerSideEncryptionConfiguration={
            "Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_in_rule(key)}}
            ]
        },
    )
    return key


def test_a_reused_bucket_with_a_customer_key_stops_with_the_setting_to_add(session, quotas, capsys):
    give_sagemaker(quotas)
    key = _reused_bucket_with_customer_key(session)
    code, report = run(session, capsys, "-c", "bucketName=photos-kms")
    encryption = by_name(report)["bucket encryption"]
    assert code == 1 and encryption["ok"] is False
    assert f"customer KMS key {key['KeyId']}" in encryption["detail"]
    assert "bucketKmsKeyArn" in encryption["fix"]


def test_a_reused_bucket_with_its_key_configured_passes(session, quotas, capsys):
    give_sagemaker(quotas)
    key = _reused_bucket_with_customer_key(session)
    code, report = run(session, capsys, "-c", "bucketName=photos-kms", "-c", f"bucketKmsKeyArn={key['Arn']}")
    assert by_name(report)["bucket encryption"]["ok"] is True and code == 0


def test_another_key_configured_than_the_bucket_uses_fails(session, quotas, capsys):
    give_sagemaker(quotas)
    _reused_bucket_with_customer_key(session, key_in_rule=lambda key: key["Arn"])
    other = session.client("kms").create_key()["KeyMetadata"]["Arn"]
    code, report = run(session, capsys, "-c", "bucketName=photos-kms", "-c", f"bucketKmsKeyArn={other}")
    encryption = by_name(report)["bucket encryption"]
    assert code == 1 and f"bucketKmsKeyArn names {other}" in encryption["detail"]


def test_a_reused_bucket_with_the_aws_managed_key_needs_no_setting(session, quotas, capsys):
    give_sagemaker(quotas)
    _reused_bucket_with_customer_key(session, key_in_rule=lambda key: "alias/aws/s3")
    code, report = run(session, capsys, "-c", "bucketName=photos-kms")
    assert by_name(report)["bucket encryption"]["ok"] is True and code == 0


def test_a_missing_api_gateway_logging_role_fails_with_the_exact_fix(fresh_session, quotas, capsys):
    give_sagemaker(quotas)
    code, report = run(fresh_session, capsys)
    role = by_name(report)["api gateway logging role"]
    assert code == 1 and role["ok"] is False and role["blocks_deploy"] is True
    assert "CreateStage" in role["detail"]
    assert "make deploy ARGS=--setup-account" in role["fix"]
    assert (
        "aws apigateway update-account --region us-east-1 --patch-operations op=replace,path=/cloudwatchRoleArn"
        in role["fix"]
    )
    assert fresh_session.client("apigateway").get_account().get("cloudwatchRoleArn") is None  # changes nothing


def test_a_set_role_that_no_longer_exists_is_reported_not_replaced(fresh_session, quotas, capsys):
    fresh_session.client("apigateway").update_account(
        patchOperations=[
            {"op": "replace", "path": "/cloudwatchRoleArn", "value": "arn:aws:iam::123456789012:role/deleted"}
        ]
    )
    code, report = run(fresh_session, capsys)
    role = by_name(report)["api gateway logging role"]
    assert role["ok"] is False and "no longer exists" in role["detail"]
    assert fresh_session.client("apigateway").get_account()["cloudwatchRoleArn"].endswith("/deleted")


def test_quota_checks_do_not_block_a_deploy(session, quotas, capsys):
    give_sagemaker(quotas, training=0)
    _, report = run(session, capsys)
    assert by_name(report)["training instance"]["blocks_deploy"] is False
    assert by_name(report)["api gateway logging role"]["ok"] is True


def test_the_jumpstart_check_reports_what_a_deploy_would_resolve_and_writes_nothing(session, quotas, capsys):
    # Given the committed lock (never resolved) and JumpStart serving the fixture's version
    before = LOCK_FILE.read_text()
    code, report = run(session, capsys)
    check = by_name(report)["jumpstart model"]
    # Then the check resolved it in memory, found every artifact, and left the lock file as it was
    assert check["ok"] is True and "version 9.9.1, resolved from JumpStart's metadata" in check["detail"]
    assert "5 of 5 artifacts found" in check["detail"] and "not written (make deploy writes it)" in check["detail"]
    assert LOCK_FILE.read_text() == before


def test_the_jumpstart_check_fails_for_a_deprecated_model_with_the_fix(session, quotas, capsys, tmp_path, monkeypatch):
    jumpstart_fixture.local_metadata(
        monkeypatch,
        jumpstart_fixture.metadata_copy(tmp_path, deprecated=True, deprecated_message="Deprecated since 2026-11."),
    )
    code, report = run(session, capsys)
    check = by_name(report)["jumpstart model"]
    assert code == 1 and check["ok"] is False and check["blocks_deploy"] is True
    assert check["detail"].endswith("deprecated in us-east-1 (Deprecated since 2026-11)")
    assert "AWS_REGION" in check["fix"]


def test_the_jumpstart_check_fails_for_a_missing_artifact(quotas, capsys):
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        jumpstart_fixture.publish(session, leave_out=["base_model_uri"])
        code, report = run(session, capsys)
    check = by_name(report)["jumpstart model"]
    assert code == 1 and check["ok"] is False
    assert check["detail"].startswith("JumpStart artifact base_model_uri s3://jumpstart-cache-prod-us-east-1/")
    assert "HeadObject: 404" in check["detail"]


def test_without_the_sdk_the_check_says_how_the_lock_gets_resolved(session, quotas, capsys, monkeypatch):
    monkeypatch.setattr(jumpstart, "sdk_installed", lambda: False)
    code, report = run(session, capsys)
    check = by_name(report)["jumpstart model"]
    assert check["ok"] is False and check["blocks_deploy"] is False
    assert "the SageMaker SDK is not installed" in check["detail"] and "make deploy" in check["fix"]
    # The committed lock's last-known values are not what the fixture's JumpStart serves
    assert "last-known values: 0 of 5 artifacts found" in check["detail"]
