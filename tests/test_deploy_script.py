"""The main job: offline synth without credentials, quota check before any deploy with them."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from emulator.service_model import ServiceModelCheck
from scripts import deploy
from scripts import refresh_jumpstart_lock as jumpstart
from stacks.training.jumpstart_lock import LOCK_FILE, JumpStartLock
from tests import jumpstart_fixture
from tests.conftest import ROOT
from tests.test_choose_bucket import make_buckets, s3_quota  # noqa: F401 (fixture)

ACCOUNT = "123456789012"  # moto's default account
PROJECT_LOCK = LOCK_FILE.relative_to(ROOT)


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
    """A checkout: cdk.json and the committed JumpStart lock (which a deploy with credentials resolves)."""
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"stackName": "DreamBoothPipeline"}}))
    (tmp_path / PROJECT_LOCK).parent.mkdir(parents=True)
    shutil.copy(LOCK_FILE, tmp_path / PROJECT_LOCK)
    return tmp_path


@pytest.fixture(autouse=True)
def jumpstart_metadata(monkeypatch):
    """JumpStart's metadata as the SDK reads it in local mode (tests/fixtures/jumpstart)."""
    jumpstart_fixture.local_metadata(monkeypatch)


@pytest.fixture(autouse=True)
def quotas(monkeypatch):
    """Service Quotas as moto lacks them (no SageMaker quota set: the quota checks fail, non-blocking)."""
    from tests.quota_harness import QuotaHarness

    return QuotaHarness().install(monkeypatch)


def set_logging_role(session, name="someone-elses-apigateway-role"):
    """An account where API Gateway's CloudWatch Logs role was set earlier (by anyone)."""
    arn = session.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    session.client("apigateway").update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": arn}]
    )
    return arn


@pytest.fixture
def fresh_session():
    """A new account: API Gateway has no CloudWatch Logs role. JumpStart serves the fixture's artifacts."""
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        jumpstart_fixture.publish(session)
        yield session


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
        session = boto3.Session(region_name="us-east-1")
        jumpstart_fixture.publish(session)
        yield session


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
    assert (
        deploy.main(["--no-rehearsal", "-c", "quietWindowSeconds=5"], session=NoCredentials(), run=run, environ={}) == 0
    )
    ((synth, _),) = run.commands
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
        StackName="CDKToolkit", TemplateBody=json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}})
    )
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
    assert (
        deploy.main(["-c", "trainingInstanceType=ml.t3.medium"], session=session, run=run, environ={}, root=project)
        == 2
    )
    assert run.commands == [] and "trainingInstanceType" in capsys.readouterr().err


def never_asked(question):
    raise AssertionError(f"asked without a terminal: {question}")


def test_a_fresh_account_without_the_api_gateway_logging_role_deploys_nothing_and_says_how(
    project, fresh_session, s3_quota, capsys
):  # noqa: F811
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
    code = deploy.main(
        ["--setup-account"], session=setup_session, run=run, environ={}, root=project, confirm=never_asked
    )
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
    code = deploy.main(
        [],
        session=setup_session,
        run=Recorder(),
        environ={},
        root=project,
        confirm=lambda q: questions.append(q) or True,
    )
    assert code == 0 and logging_role(setup_session).endswith("/APIGatewayCloudWatchLogs-dreambooth")
    (question,) = questions
    assert "account setting" in question and "kept after cdk destroy" in question


def test_a_role_someone_else_set_is_never_replaced(project, session, s3_quota):  # noqa: F811
    s3_quota(100)
    theirs = logging_role(session)
    assert (
        deploy.main(["--setup-account"], session=session, run=Recorder(), environ={}, root=project, confirm=never_asked)
        == 0
    )
    assert logging_role(session) == theirs
    assert "APIGatewayCloudWatchLogs-dreambooth" not in [
        r["RoleName"] for r in session.client("iam").list_roles()["Roles"]
    ]


def test_missing_quotas_are_reported_but_do_not_stop_the_deploy(project, session, s3_quota, capsys):  # noqa: F811
    s3_quota(100)  # moto has no SageMaker quotas: the quota checks fail
    run = Recorder()
    assert deploy.main([], session=session, run=run, environ={}, root=project) == 0
    assert run.commands[-1][0][3] == "deploy"
    assert "trainings or generations will fail" in capsys.readouterr().out


def test_skip_preflight_deploys_without_the_checks(project, fresh_session, s3_quota):  # noqa: F811
    s3_quota(100)
    run = Recorder()
    assert (
        deploy.main(["--skip-preflight"], session=fresh_session, run=run, environ={}, root=project, confirm=never_asked)
        == 0
    )
    assert run.commands[-1][0][3:] == ["deploy", *deploy.CDK_QUIET] and logging_role(fresh_session) is None


# ---- the JumpStart lock, resolved where the truth is (issue 18, item 3) ----------------------------


def project_lock(project):
    return json.loads((project / PROJECT_LOCK).read_text())


def resolve_project_lock(project, days_ago, values=None, version="9.9.1"):
    """The project's lock as an earlier deploy left it: us-east-1 resolved `days_ago` days ago."""
    resolved = {
        "training_instance_type": "ml.g4dn.2xlarge",
        "endpoint_instance_type": "ml.g4dn.2xlarge",
        "model_version": version,
        "hyperparameters": {"epochs": "7"},
        "metric_definitions": [],
        "inference_environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        "regions": {"us-east-1": values or jumpstart_fixture.artifacts("us-east-1")},
    }
    lock = jumpstart.apply(
        project_lock(project), resolved, datetime.now(timezone.utc) - timedelta(days=days_ago), "an earlier deploy"
    )
    jumpstart.write(project / PROJECT_LOCK, lock)
    return lock


class LockAtCdk(Recorder):
    """Records, with each command, the lock file as it was when the command ran."""

    def __init__(self, project):
        super().__init__()
        self.project, self.locks = project, []

    def __call__(self, command, env):
        self.locks.append(project_lock(self.project))
        return super().__call__(command, env)


def test_an_unresolved_lock_is_resolved_verified_and_written_before_cdk_runs(project, session, s3_quota, capsys):  # noqa: F811
    # Given the committed lock (last-known values, resolved_at null) and JumpStart's metadata and artifacts
    s3_quota(100)
    assert JumpStartLock.load(project / PROJECT_LOCK).staleness("us-east-1", datetime.now(timezone.utc))
    run = LockAtCdk(project)
    # When make deploy runs with credentials, every AWS call checked against botocore's model
    with ServiceModelCheck() as check:
        assert deploy.main([], session=session, run=run, environ={}, root=project) == 0
    # Then the region's entry is JumpStart's, recorded as resolved, and written before any cdk command
    assert check.violations == [] and check.calls > 0
    lock = project_lock(project)
    assert lock["regions"]["us-east-1"] == jumpstart_fixture.artifacts("us-east-1")
    assert lock["model_version"] == "9.9.1" and lock["resolved_regions"]["us-east-1"]["model_version"] == "9.9.1"
    assert "unresolved" not in lock and "by make deploy" in lock["source"]
    assert [c[0][3] for c in run.commands] == ["bootstrap", "deploy"]
    assert all(seen == lock for seen in run.locks)
    # Regions this deploy did not go to keep their last-known values and stay marked so
    assert lock["regions"]["eu-west-1"] == json.loads(LOCK_FILE.read_text())["regions"]["eu-west-1"]
    assert JumpStartLock.load(project / PROJECT_LOCK).staleness("eu-west-1", datetime.now(timezone.utc))
    out = capsys.readouterr().out
    assert "JumpStart lock for us-east-1: version 9.9.1, resolved from JumpStart's metadata" in out
    assert "5 of 5 artifacts found" in out and f"Wrote {PROJECT_LOCK}" in out


def test_a_deprecated_model_stops_the_deploy_with_one_line(project, session, tmp_path, monkeypatch, capsys):
    # Given JumpStart's metadata marks the model's version deprecated
    jumpstart_fixture.local_metadata(
        monkeypatch,
        jumpstart_fixture.metadata_copy(tmp_path, deprecated=True, deprecated_message="This model is deprecated."),
    )
    before = (project / PROJECT_LOCK).read_text()
    run = Recorder()
    # When make deploy runs
    code = deploy.main([], session=session, run=run, environ={}, root=project)
    # Then nothing ran, the lock is as it was, and one line says what to do
    assert code == deploy.JUMPSTART_UNAVAILABLE == 5 and run.commands == []
    assert (project / PROJECT_LOCK).read_text() == before
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert (
        "deprecated in us-east-1 (This model is deprecated): nothing was deployed and the lock file is unchanged"
        in line
    )
    assert "JumpStart offers no newer version" in line


def test_a_deprecated_pinned_version_says_to_move_the_lock(project, session, tmp_path, monkeypatch, capsys):
    # Given a lock resolved to 9.9.1 long ago, which JumpStart has deprecated since
    resolve_project_lock(project, days_ago=45)
    jumpstart_fixture.local_metadata(monkeypatch, jumpstart_fixture.metadata_copy(tmp_path, deprecated=True))
    code = deploy.main([], session=session, run=Recorder(), environ={}, root=project)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 5 and "version 9.9.1 deprecated in us-east-1" in line
    assert 'make refresh-lock ARGS="--region us-east-1"' in line


def test_a_missing_artifact_stops_the_deploy_with_one_line(project, s3_quota, capsys):  # noqa: F811
    # Given JumpStart's metadata names an inference image the registry does not have
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        set_logging_role(session)
        jumpstart_fixture.publish(session, leave_out=["inference_image_uri"])
        before = (project / PROJECT_LOCK).read_text()
        run = Recorder()
        with ServiceModelCheck() as check:
            code = deploy.main([], session=session, run=run, environ={}, root=project)
    assert check.violations == []
    assert code == 5 and run.commands == [] and (project / PROJECT_LOCK).read_text() == before
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        "JumpStart artifact inference_image_uri 763104351884.dkr.ecr.us-east-1.amazonaws.com/"
        "huggingface-pytorch-inference:9.9.1-fixture-gpu is missing in us-east-1"
    )
    assert "nothing was deployed" in line and "AWS_REGION" in line


def test_a_region_jumpstart_does_not_serve_stops_the_deploy(project, capsys):
    # The fixture's metadata has images for us-east-1 and eu-west-1 only
    with mock_aws():
        session = boto3.Session(region_name="ap-south-1")
        code = deploy.main([], session=session, run=Recorder(), environ={}, root=project)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 5 and "JumpStart does not serve" in line and "in ap-south-1" in line


def test_a_fresh_lock_is_not_resolved_again_but_still_verified(project, session, s3_quota, monkeypatch, capsys):  # noqa: F811
    # Given a lock resolved for us-east-1 a day ago (the SDK is not even needed)
    s3_quota(100)
    resolve_project_lock(project, days_ago=1)
    before = (project / PROJECT_LOCK).read_text()
    monkeypatch.setattr(jumpstart, "resolve", lambda *a, **k: pytest.fail("resolved a fresh lock"))
    run = Recorder()
    assert deploy.main([], session=session, run=run, environ={}, root=project) == 0
    assert (project / PROJECT_LOCK).read_text() == before and run.commands[-1][0][3] == "deploy"
    assert (
        "resolved earlier, within the lock's age limit; not deprecated; 5 of 5 artifacts found"
        in capsys.readouterr().out
    )
    # And an artifact gone since (the lock is fresh) still stops the next deploy
    session.client("ecr").batch_delete_image(
        registryId="763104351884",
        repositoryName="huggingface-pytorch-training",
        imageIds=[{"imageTag": "9.9.1-fixture-gpu"}],
    )
    assert deploy.main([], session=session, run=Recorder(), environ={}, root=project) == 5
    assert "make refresh-lock" in capsys.readouterr().err


def test_a_version_deprecated_since_a_fresh_resolution_stops_the_deploy(
    project, session, tmp_path, monkeypatch, capsys
):
    # Given a lock resolved to 9.9.1 yesterday (within the age limit), which JumpStart has deprecated since
    resolve_project_lock(project, days_ago=1)
    before = (project / PROJECT_LOCK).read_text()
    jumpstart_fixture.local_metadata(
        monkeypatch,
        jumpstart_fixture.metadata_copy(tmp_path, deprecated=True, deprecated_message="Withdrawn upstream."),
    )
    monkeypatch.setattr(jumpstart, "resolve", lambda *a, **k: pytest.fail("resolved a fresh lock"))
    run = Recorder()
    # When make deploy runs, the lock is not resolved again, but the version's specs are read
    code = deploy.main([], session=session, run=run, environ={}, root=project)
    # Then nothing ran and one line says the version is deprecated and what to do
    assert code == deploy.JUMPSTART_UNAVAILABLE and run.commands == []
    assert (project / PROJECT_LOCK).read_text() == before
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "version 9.9.1 deprecated in us-east-1 (Withdrawn upstream)" in line
    assert 'make refresh-lock ARGS="--region us-east-1"' in line


def test_without_the_sdk_a_fresh_lock_says_its_deprecation_was_not_checked(
    project, session, s3_quota, monkeypatch, capsys
):  # noqa: F811
    s3_quota(100)
    resolve_project_lock(project, days_ago=1)
    monkeypatch.setattr(jumpstart, "sdk_installed", lambda: False)
    assert deploy.main([], session=session, run=Recorder(), environ={}, root=project) == 0
    assert "deprecation not checked (the SageMaker SDK is not installed)" in capsys.readouterr().out


G5_INFERENCE_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:9.9.1-fixture-g5"


def g5_hosting_metadata(tmp_path):
    """JumpStart's metadata with its own inference image for g5 endpoints (specs map families to images)."""
    spec = json.loads(jumpstart_fixture.SPEC.read_text())
    hosting = spec["hosting_instance_type_variants"]
    hosting["regional_aliases"]["us-east-1"]["gpu_ecr_uri_g5"] = G5_INFERENCE_IMAGE
    hosting["variants"]["g5"] = {"regional_properties": {"image_uri": "$gpu_ecr_uri_g5"}}
    return jumpstart_fixture.metadata_copy(tmp_path, hosting_instance_type_variants=hosting)


def test_each_image_is_resolved_for_the_instance_type_it_runs_on(project, session, s3_quota, tmp_path, monkeypatch):  # noqa: F811
    # Given JumpStart serves g5 endpoints another inference image, and the deploy serves on g5, trains on g4dn
    s3_quota(100)
    jumpstart_fixture.local_metadata(monkeypatch, g5_hosting_metadata(tmp_path))
    jumpstart_fixture.publish(session, values={"inference_image_uri": G5_INFERENCE_IMAGE})
    args = ["-c", "endpointInstanceType=ml.g5.2xlarge"]
    # When make deploy runs
    assert deploy.main(args, session=session, run=Recorder(), environ={}, root=project) == 0
    # Then the training image is the g4dn one, the inference image the endpoint's, and the lock says what for
    lock = project_lock(project)
    entry = lock["regions"]["us-east-1"]
    assert entry["training_image_uri"] == jumpstart_fixture.artifacts("us-east-1")["training_image_uri"]
    assert entry["inference_image_uri"] == G5_INFERENCE_IMAGE
    assert lock["resolved_regions"]["us-east-1"] | {"resolved_at": None} == {
        "resolved_at": None,
        "model_version": "9.9.1",
        "training_instance_type": "ml.g4dn.2xlarge",
        "endpoint_instance_type": "ml.g5.2xlarge",
    }
    # And a fresh lock resolved for another endpoint type is resolved again for this one
    resolve_project_lock(project, days_ago=1)
    assert deploy.main(args, session=session, run=Recorder(), environ={}, root=project) == 0
    assert project_lock(project)["regions"]["us-east-1"]["inference_image_uri"] == G5_INFERENCE_IMAGE


def test_a_lock_older_than_the_age_limit_is_resolved_again(project, session, s3_quota):  # noqa: F811
    from stacks.config import JUMPSTART_LOCK_MAX_AGE_DAYS

    s3_quota(100)
    old = resolve_project_lock(project, days_ago=JUMPSTART_LOCK_MAX_AGE_DAYS + 1)
    assert deploy.main([], session=session, run=Recorder(), environ={}, root=project) == 0
    assert (
        project_lock(project)["resolved_regions"]["us-east-1"]["resolved_at"]
        > old["resolved_regions"]["us-east-1"]["resolved_at"]
    )


def test_the_sdk_is_installed_when_a_stale_lock_needs_it(project, session, s3_quota, capsys):  # noqa: F811
    s3_quota(100)
    # A failed install stops with what to do, the lock untouched
    code = deploy.resolve_jumpstart(session, "us-east-1", lambda c, e: 1, {}, project, installed=lambda: False)
    assert code == 1 and "Could not install the SageMaker SDK" in capsys.readouterr().err
    assert project_lock(project)["resolved_at"] is None
    # One that works is followed by the resolution
    installed = iter([False, True])
    run = Recorder()
    code = deploy.resolve_jumpstart(session, "us-east-1", run, {}, project, installed=lambda: next(installed))
    assert code is None and project_lock(project)["resolved_regions"]["us-east-1"]
    ((pip, _),) = run.commands
    assert pip[1:] == ["-m", "pip", "install", "-q", "-r", str(project / "requirements-lock.txt")]
    assert "Installing the SageMaker SDK (requirements-lock.txt: sagemaker-core)" in capsys.readouterr().out


def test_offline_the_lock_keeps_its_last_known_values(project):
    before = (project / PROJECT_LOCK).read_text()
    assert deploy.main(["--no-rehearsal"], session=NoCredentials(), run=Recorder(), environ={}, root=project) == 0
    assert (project / PROJECT_LOCK).read_text() == before
    assert json.loads(before)["resolved_at"] is None
