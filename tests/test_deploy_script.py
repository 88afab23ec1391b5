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


@pytest.fixture(autouse=True)
def quotas(monkeypatch):
    """Service Quotas as moto lacks them (no SageMaker quota set: the quota checks fail, non-blocking)."""
    from tests.quota_harness import QuotaHarness

    return QuotaHarness().install(monkeypatch)


def set_logging_role(session, name="someone-elses-apigateway-role"):
    """An account where API Gateway's CloudWatch Logs role was set earlier (by anyone)."""
    arn = session.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    session.client("apigateway").update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": arn}])
    return arn


@pytest.fixture
def fresh_session():
    """A new account: API Gateway has no CloudWatch Logs role."""
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


@pytest.fixture
def setup_session(monkeypatch):
    """A new account with the AWS managed policy the role set-up attaches, as moto has it from AWS.

    Only that one: moto would load all ~1,600 of them into each of the 12 IAM backends it creates
    (2.5 s a test). One AWS lacks (a name the code mistyped) still fails here, as AWS would refuse it.
    """
    from moto.iam import models as iam_models

    from scripts.cli.preflight import APIGATEWAY_LOGS_POLICY

    name = APIGATEWAY_LOGS_POLICY.rsplit("/", 1)[-1]
    published = json.loads(iam_models.aws_managed_policies_data)
    monkeypatch.setattr(iam_models, "aws_managed_policies_data", json.dumps({name: published[name]}))
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield boto3.Session(region_name="us-east-1")


@pytest.fixture
def session(fresh_session):
    set_logging_role(fresh_session)
    return fresh_session


def logging_role(session):
    return session.client("apigateway").get_account().get("cloudwatchRoleArn")


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


def never_asked(question):
    raise AssertionError(f"asked without a terminal: {question}")


def test_a_fresh_account_without_the_api_gateway_logging_role_deploys_nothing_and_says_how(
        project, fresh_session, s3_quota, capsys):  # noqa: F811
    s3_quota(100)
    run = Recorder()
    code = deploy.main([], session=fresh_session, run=run, environ={}, root=project, confirm=lambda q: False)
    assert code == deploy.PREFLIGHT_FAILED and run.commands == []
    out, err = capsys.readouterr()
    assert "api gateway logging role" in out and "FAIL" in out
    assert "--setup-account" in out and "aws apigateway update-account" in out  # the exact fix
    assert "Nothing was deployed" in err
    assert logging_role(fresh_session) is None  # nothing changed without consent


def test_setup_account_creates_the_role_sets_it_and_deploys(project, setup_session, s3_quota, capsys):  # noqa: F811
    s3_quota(100)
    run = Recorder()
    code = deploy.main(["--setup-account"], session=setup_session, run=run, environ={}, root=project,
                       confirm=never_asked)
    assert code == 0 and [c[0][3] for c in run.commands] == ["bootstrap", "deploy"]
    assert all("--setup-account" not in c[0] for c in run.commands)
    role_arn = logging_role(setup_session)
    assert role_arn.endswith(":role/APIGatewayCloudWatchLogs-dreambooth")
    iam = setup_session.client("iam")
    trust = iam.get_role(RoleName="APIGatewayCloudWatchLogs-dreambooth")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "apigateway.amazonaws.com"}
    attached = iam.list_attached_role_policies(RoleName="APIGatewayCloudWatchLogs-dreambooth")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AmazonAPIGatewayPushToCloudWatchLogs"]
    assert "Created arn:aws:iam::" in capsys.readouterr().out


def test_consent_at_the_prompt_sets_the_role_up(project, setup_session, s3_quota):  # noqa: F811
    s3_quota(100)
    questions = []
    code = deploy.main([], session=setup_session, run=Recorder(), environ={}, root=project,
                       confirm=lambda q: questions.append(q) or True)
    assert code == 0 and logging_role(setup_session).endswith("/APIGatewayCloudWatchLogs-dreambooth")
    (question,) = questions
    assert "account setting" in question and "kept after cdk destroy" in question


def test_a_role_someone_else_set_is_never_replaced(project, session, s3_quota):  # noqa: F811
    s3_quota(100)
    theirs = logging_role(session)
    assert deploy.main(["--setup-account"], session=session, run=Recorder(), environ={}, root=project,
                       confirm=never_asked) == 0
    assert logging_role(session) == theirs
    assert "APIGatewayCloudWatchLogs-dreambooth" not in [
        r["RoleName"] for r in session.client("iam").list_roles()["Roles"]]


def test_missing_quotas_are_reported_but_do_not_stop_the_deploy(project, session, s3_quota, capsys):  # noqa: F811
    s3_quota(100)  # moto has no SageMaker quotas: the quota checks fail
    run = Recorder()
    assert deploy.main([], session=session, run=run, environ={}, root=project) == 0
    assert run.commands[-1][0][3] == "deploy"
    assert "trainings or generations will fail" in capsys.readouterr().out


def test_skip_preflight_deploys_without_the_checks(project, fresh_session, s3_quota):  # noqa: F811
    s3_quota(100)
    run = Recorder()
    assert deploy.main(["--skip-preflight"], session=fresh_session, run=run, environ={}, root=project,
                       confirm=never_asked) == 0
    assert run.commands[-1][0][3:] == ["deploy", *deploy.CDK_QUIET] and logging_role(fresh_session) is None
