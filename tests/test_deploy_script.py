"""The main job: offline synth without credentials, quota check before any deploy with them."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from scripts import deploy
from tests.test_choose_bucket import make_buckets, s3_quota  # noqa: F401 (fixture)

ACCOUNT = "123456789012"  # moto's default account


class NoCredentials:
    """A boto3 session as it is on a machine with no AWS configuration at all."""

    region_name = None

    def get_credentials(self):
        return None

    def client(self, name, **kwargs):
        raise AssertionError(f"offline synth must make no AWS call (asked for {name})")


class Recorder:
    def __init__(self):
        self.commands = []

    def __call__(self, command, env):
        self.commands.append((list(command), env))
        return 0


@pytest.fixture
def project(tmp_path):
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"stackName": "DreamBoothPipeline"}}))
    return tmp_path


@pytest.fixture
def session():
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def test_without_credentials_it_synthesizes_rehearses_and_says_what_a_deploy_needs(capsys):
    run = Recorder()
    assert deploy.main([], session=NoCredentials(), run=run, environ={}) == 0
    (synth, _), (rehearsal, _) = run.commands
    # --no-notices: no notices fetched from the network or printed (no noise in make deploy)
    assert synth[-4:] == ["cdk", "synth", "--quiet", "--no-notices"]
    assert rehearsal[1:] == ["-m", "scripts.rehearse"]
    out = capsys.readouterr().out
    assert "No AWS credentials" in out and "cdk.out/" in out and "AWS_REGION" in out
    assert "offline rehearsal" in out and "--no-rehearsal" in out
    assert "ml.g4dn.2xlarge training job usage" in out


def test_no_rehearsal_skips_it_and_is_not_passed_to_cdk():
    run = Recorder()
    assert deploy.main(["--no-rehearsal", "-c", "quietWindowSeconds=5"], session=NoCredentials(), run=run,
                       environ={}) == 0
    (synth, _), = run.commands
    assert synth[-5:] == ["synth", "--quiet", "--no-notices", "-c", "quietWindowSeconds=5"]
    assert "--no-rehearsal" not in synth


def test_a_failed_rehearsal_fails_the_command_and_says_so(capsys):
    def run(command, env):
        return 1 if command[1:] == ["-m", "scripts.rehearse"] else 0

    assert deploy.main([], session=NoCredentials(), run=run, environ={}) == 1
    assert "rehearsal failed" in capsys.readouterr().err


def test_a_failed_synth_does_not_rehearse():
    commands = []

    def run(command, env):
        commands.append(command)
        return 1

    assert deploy.main([], session=NoCredentials(), run=run, environ={}) == 1
    assert len(commands) == 1


def test_under_quota_records_create_then_deploys(project, session, s3_quota):  # noqa: F811
    s3_quota(100)
    run = Recorder()
    assert deploy.main([], session=session, run=run, environ={}, root=project) == 0
    context = json.loads((project / "cdk.context.json").read_text())
    (decision,) = context.values()
    assert decision["action"] == "create"
    assert [c[0][3] for c in run.commands] == ["bootstrap", "deploy"]
    assert run.commands[-1][1]["CDK_DEPLOY_ACCOUNT"] == ACCOUNT


def test_at_quota_with_nothing_to_reuse_deploys_nothing(project, session, s3_quota, capsys):  # noqa: F811
    s3_quota(4)
    make_buckets(session, 4)
    run = Recorder()
    assert deploy.main([], session=session, run=run, environ={}, root=project) == 3
    assert run.commands == []
    assert not (project / "cdk.context.json").exists()
    assert "Options:" in capsys.readouterr().err


def test_explicit_bucket_is_checked_and_no_quota_decision_is_made(project, session):
    session.client("s3").create_bucket(Bucket="my-photos")
    session.client("cloudformation").create_stack(
        StackName="CDKToolkit", TemplateBody=json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}))
    run = Recorder()
    assert deploy.main(["-c", "bucketName=my-photos"], session=session, run=run, environ={}, root=project) == 0
    assert not (project / "cdk.context.json").exists()
    # Already bootstrapped: straight to deploy, with the user's arguments passed on.
    assert [c[0][3:] for c in run.commands] == [["deploy", "--no-notices", "-c", "bucketName=my-photos"]]


def test_missing_explicit_bucket_is_a_clear_error(project, session, capsys):
    run = Recorder()
    code = deploy.main(["-c", "bucketName=not-there"], session=session, run=run, environ={}, root=project)
    assert code == 2 and run.commands == []
    assert "not-there" in capsys.readouterr().err


def test_recorded_decision_is_reused_without_asking_again(project, session, s3_quota):  # noqa: F811
    s3_quota(4)
    make_buckets(session, 4)  # would now fail the quota check...
    key = f"dreambooth-bucket:stack=DreamBoothPipeline:account={ACCOUNT}:region=us-east-1"
    (project / "cdk.context.json").write_text(json.dumps({key: {"action": "create", "reason": "earlier"}}))
    run = Recorder()
    # ...but the recorded choice stands, as CDK's own lookups do
    assert deploy.main([], session=session, run=run, environ={}, root=project) == 0
    assert run.commands[-1][0][3] == "deploy"


def test_bad_configuration_fails_before_any_command(capsys, session, project):
    run = Recorder()
    assert deploy.main(["-c", "trainingInstanceType=ml.t3.medium"], session=session, run=run, environ={},
                       root=project) == 2
    assert run.commands == [] and "trainingInstanceType" in capsys.readouterr().err
