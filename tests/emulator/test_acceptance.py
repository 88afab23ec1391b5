"""`make acceptance` (scripts/acceptance.py): the emulator backend runs the whole flow; the AWS
backend's AWS-side steps (finding or deploying the stack, copying the public sample, removing
what the run created) run against moto."""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from datetime import datetime, timedelta, timezone

import boto3
from moto import mock_aws

from scripts import acceptance
from stacks.config import AppConfig
from stacks.shared.assets import lambda_dir
from stacks.training.jumpstart_lock import LOCK_FILE
from tests import jumpstart_fixture
from tests.conftest import ROOT
from tests.pipeline.conftest import jpeg_bytes
from tests.quota_harness import QuotaHarness

PROJECT_LOCK = LOCK_FILE.relative_to(ROOT)


def config() -> AppConfig:
    return AppConfig.load({}.get, {})


def test_without_credentials_the_flow_runs_on_the_emulator_and_says_so(tmp_path, capsys, monkeypatch):
    # Given no AWS credentials at all
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    # When make acceptance runs (with --destroy)
    code = acceptance.main(["--out", str(tmp_path), "--destroy"])
    out, err = capsys.readouterr()
    # Then the same flow ran on the emulator, and the report says it is the emulator's numbers
    assert code == 0, out + err
    assert "running the same flow on the emulator" in err
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["backend"] == "emulator" and report["emulated"] is True and report["ok"] is True
    assert report["dataset"].startswith("acceptance-")
    assert [i["prompt"] for i in report["images"]] == [
        "a photo of a Doppler dog on the sea",
        "a photo of a Doppler dog with a hat",
        "a photo of a Doppler dog with Donald Trump",
    ]
    for image in report["images"]:
        assert image["status"] == "succeeded" and (run_dir / image["files"][0]).read_bytes()[:3] == b"\xff\xd8\xff"
    stages = [s["name"] for s in report["stages"]]
    assert stages[:2] == ["deploy", "create dataset"] and "training" in stages and "deploying" in stages
    assert report["training_job_name"] == report["model_id"] and report["endpoint_name"] == "DreamBoothPipeline-sd"
    assert report["cost"]["total_usd"] > 0 and report["cost"]["training_instance_type"] == "ml.g4dn.2xlarge"
    # The endpoint the run created was removed; the bucket and photos were not touched
    assert report["created"] == {"stack": False, "endpoint": True}
    assert report["destroyed"] == ["endpoint DreamBoothPipeline-sd (its model and config stay: they cost nothing)"]
    markdown = (run_dir / "report.md").read_text()
    assert "SageMaker is emulated" in markdown and "| training |" in markdown and "Cost (cost model)" in markdown
    # The assumptions table has every row, each "emulated", with the emulator's own figures
    rows = {a["key"]: a for a in report["assumptions"]}
    assert list(rows) == list(acceptance.assumed_texts(config())) and len(rows) == 11
    assert "small tarball" in rows["packaging_time"]["observed"]
    assert {a["status"] for a in rows.values()} == {"emulated"}
    assert re.search(r"deploy: \d+ events .* train: \d+ events", rows["history_events"]["observed"])
    assert "## Assumptions the offline tests rest on" in markdown and "| emulated |" in markdown


class FakeSession:
    """A boto3 session over moto, as the user's session would be."""

    region_name = "us-east-1"

    def client(self, name):
        return boto3.client(name, region_name=self.region_name)


@mock_aws
def test_the_aws_backend_deploys_when_the_stack_is_missing_and_copies_the_public_sample(monkeypatch, tmp_path):
    # Given an account whose preflight passes (Service Quotas as moto lacks them, API Gateway's
    # logging role set), JumpStart serving the fixture's model, the public sample bucket (as AWS
    # publishes it) and no stack yet
    QuotaHarness().install(monkeypatch)
    jumpstart_fixture.local_metadata(monkeypatch)
    (tmp_path / PROJECT_LOCK).parent.mkdir(parents=True)
    shutil.copy(LOCK_FILE, tmp_path / PROJECT_LOCK)
    role = boto3.client("iam").create_role(RoleName="apigw-logs", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    boto3.client("apigateway", region_name="us-east-1").update_account(
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": role}]
    )
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="jumpstart-cache-prod-us-east-1")
    for name in ("alvan-nee-1.jpeg", "alvan-nee-2.jpeg", "alvan-nee-3.jpeg"):
        s3.put_object(Bucket="jumpstart-cache-prod-us-east-1", Key=acceptance.SAMPLE_PREFIX + name, Body=jpeg_bytes())
    s3.put_object(
        Bucket="jumpstart-cache-prod-us-east-1",
        Key=acceptance.SAMPLE_PREFIX + "dataset_info.json",
        Body=b'{"instance_prompt": "a photo of a Doppler dog"}',
    )
    s3.create_bucket(Bucket="data-bucket")
    jumpstart_fixture.publish(boto3.Session(region_name="us-east-1"))
    commands = []

    def run(command, env):
        # What `cdk deploy` leaves behind: the stack with its outputs
        commands.append(list(command))
        if "deploy" in command:
            boto3.client("cloudformation", region_name="us-east-1").create_stack(
                StackName="DreamBoothPipeline",
                TemplateBody=json.dumps(
                    {
                        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                        "Outputs": {
                            "BucketName": {"Value": "data-bucket"},
                            "ApiUrl": {"Value": "https://abc.execute-api.us-east-1.amazonaws.com/v1/"},
                        },
                    }
                ),
            )
        return 0

    backend = acceptance.AwsBackend(boto3.Session(region_name="us-east-1"), config(), run=run, root=tmp_path)
    said = []
    # When the flow makes sure the stack is there and creates its dataset
    assert backend.ensure_deployed(said.append) is True
    assert any("deploy" in c for c in commands) and "not deployed" in said[0]
    plan = acceptance.acceptance_plan("us-east-1", datetime(2026, 12, 1, 10, 0))
    keys = acceptance.copy_sample(backend, plan)
    # Then the photos were copied (dataset_info.json last), and a second run deploys nothing
    assert keys[-1] == "datasets/acceptance-20261201100000/dataset_info.json" and len(keys) == 4
    listed = s3.list_objects_v2(Bucket="data-bucket", Prefix="datasets/")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(keys)
    assert acceptance.AwsBackend(FakeSession(), config(), run=run, root=tmp_path).ensure_deployed(said.append) is False
    # The deploy resolved the project's JumpStart lock for the region first
    assert (
        json.loads((tmp_path / PROJECT_LOCK).read_text())["resolved_regions"]["us-east-1"]["model_version"] == "9.9.1"
    )
    assert (
        s3.list_objects_v2(Bucket="jumpstart-cache-prod-us-east-1", Prefix=acceptance.SAMPLE_PREFIX)["KeyCount"] == 4
    )  # source untouched


@mock_aws
def test_destroy_removes_only_what_the_run_created():
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    sagemaker.create_model(
        ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/r", PrimaryContainer={"Image": "i"}
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="m",
        ProductionVariants=[
            {"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.g4dn.2xlarge"}
        ],
    )
    sagemaker.create_endpoint(EndpointName="DreamBoothPipeline-sd", EndpointConfigName="m")
    commands = []
    backend = acceptance.AwsBackend(FakeSession(), config(), run=lambda c, e: commands.append(list(c)) or 0)
    report = acceptance.Report(
        backend="aws", emulated=False, region="us-east-1", dataset="d", endpoint_name="DreamBoothPipeline-sd"
    )
    # A run that found both the stack and the endpoint removes nothing
    assert acceptance.destroy_created(backend, report, print) == []
    assert sagemaker.list_endpoints()["Endpoints"]
    # A run that created the endpoint deletes it (model and config stay)
    report.created["endpoint"] = True
    assert acceptance.destroy_created(backend, report, print)[0].startswith("endpoint DreamBoothPipeline-sd")
    assert sagemaker.list_endpoints()["Endpoints"] == [] and sagemaker.list_models()["Models"]
    # A run that deployed the stack destroys it with cdk (the stack retains its data bucket)
    report.created["stack"] = True
    acceptance.destroy_created(backend, report, print)
    assert commands and commands[-1][-3:] == ["destroy", "--force", "DreamBoothPipeline"]
    assert not any("s3" in " ".join(c) for c in commands)


@mock_aws
def test_destroy_previous_removes_what_an_earlier_run_recorded(tmp_path):
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    sagemaker.create_model(
        ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/r", PrimaryContainer={"Image": "i"}
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="m",
        ProductionVariants=[
            {"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.g4dn.2xlarge"}
        ],
    )
    sagemaker.create_endpoint(EndpointName="DreamBoothPipeline-sd", EndpointConfigName="m")
    earlier = tmp_path / "20261201T100000Z"
    earlier.mkdir()
    report = acceptance.Report(
        backend="aws", emulated=False, region="us-east-1", dataset="d", endpoint_name="DreamBoothPipeline-sd"
    )
    report.created["endpoint"] = True
    acceptance.write_report(report, earlier)
    backend = acceptance.AwsBackend(FakeSession(), config(), run=lambda c, e: 0)
    path = acceptance.latest_report(tmp_path)
    assert acceptance.destroy_previous(backend, path, print) == [
        "endpoint DreamBoothPipeline-sd (its model and config stay: they cost nothing)"
    ]
    assert sagemaker.list_endpoints()["Endpoints"] == []


# ---- the assumptions table on AWS (issue 18, item 8): each status from what moto holds ---------------


def logged(session, group, *messages):
    logs = session.client("logs")
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    logs.create_log_stream(logGroupName=group, logStreamName=f"s{time.monotonic_ns()}")
    stream = logs.describe_log_streams(logGroupName=group)["logStreams"][-1]["logStreamName"]
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=group, logStreamName=stream, logEvents=[{"timestamp": now, "message": m} for m in messages]
    )


def cold_start_line(botocore_version):
    from dreambooth_shared.contract import COLD_START_LOG_MESSAGE, SDK_VERSIONS_LOG_FIELD

    return json.dumps(
        {
            "level": "INFO",
            "message": COLD_START_LOG_MESSAGE,
            SDK_VERSIONS_LOG_FIELD: {"boto3": "1.0", "botocore": botocore_version},
        }
    )


@mock_aws
def test_the_aws_backend_fills_every_row_from_what_aws_shows(tmp_path, monkeypatch):
    import botocore

    from emulator.service_model import ServiceModelCheck
    from scripts import refresh_jumpstart_lock as jumpstart

    # Given a deployed stack (a function's log group, the training machine), an execution and cold-start
    # lines since the run started, and the project's lock as JumpStart resolves it
    session = boto3.Session(region_name="us-east-1")
    started = datetime.now(timezone.utc) - timedelta(seconds=5)
    cloudformation = session.client("cloudformation")
    cloudformation.create_stack(
        StackName="DreamBoothPipeline",
        TemplateBody=json.dumps(
            {
                "Resources": {
                    "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/dreambooth/upload"}},
                    "Machine": {
                        "Type": "AWS::StepFunctions::StateMachine",
                        "Properties": {
                            "StateMachineName": "DreamBoothPipeline-train",
                            "RoleArn": "arn:aws:iam::123456789012:role/r",
                            "DefinitionString": json.dumps(
                                {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
                            ),
                        },
                    },
                }
            }
        ),
    )
    machine = session.client("stepfunctions").list_state_machines()["stateMachines"][0]["stateMachineArn"]
    session.client("stepfunctions").start_execution(stateMachineArn=machine)
    logged(session, "/dreambooth/upload", cold_start_line(botocore.__version__), "an ordinary line")
    jumpstart_fixture.local_metadata(monkeypatch)
    (tmp_path / PROJECT_LOCK).parent.mkdir(parents=True)
    lock = jumpstart.apply(
        json.loads(LOCK_FILE.read_text()),
        {
            "training_instance_type": "ml.g4dn.2xlarge",
            "endpoint_instance_type": "ml.g4dn.2xlarge",
            "model_version": "9.9.1",
            "hyperparameters": {},
            "metric_definitions": [],
            "inference_environment": {},
            "regions": {"us-east-1": jumpstart_fixture.artifacts("us-east-1")},
        },
        datetime.now(timezone.utc),
        "a test",
    )
    jumpstart.write(tmp_path / PROJECT_LOCK, lock)
    report = acceptance.Report(
        backend="aws",
        emulated=False,
        region="us-east-1",
        dataset="d",
        started_at=started,
        endpoint_name="DreamBoothPipeline-sd",
        stages=[
            acceptance.Stage("training", 600.0),
            acceptance.Stage("deploying", 400.0),
            *[acceptance.Stage(f"generate: p{i}", 30.0) for i in range(3)],
        ],
        images=[{"files": ["a.jpg"]}] * 3,
    )
    backend = acceptance.AwsBackend(session, config(), root=tmp_path, emulator_figures=lambda: {"train": [4]})
    # When the table is observed (every call checked against botocore's model)
    with ServiceModelCheck() as check:
        rows = {a.key: a for a in backend.observe(report, config())}
    # Then every row is there, each with the status what AWS showed gives it
    assert check.violations == [] and check.calls >= 5
    assert list(rows) == list(acceptance.assumed_texts(config()))
    status = {key: a.status for key, a in rows.items()}
    assert status == {
        "jumpstart_lock": "confirmed",
        "training_output_code": "not observed",
        "packaging_time": "not observed",
        "access_denied": "confirmed",
        "history_events": "confirmed",
        "training_time": "confirmed",
        "endpoint_creation": "confirmed",
        "generation_time": "contradicted",
        "scale_in": "not observed",
        "scale_out_from_zero": "not observed",
        "sdk_version": "confirmed",
    }, {k: a.observed for k, a in rows.items()}
    assert rows["generation_time"].observed.startswith("one image took 0.5 min (30 s), the model assumes 0.2 min")
    assert rows["history_events"].observed == "train: AWS 4 events (most of 1 execution(s)), the emulator 4"
    assert "no AccessDenied in 1 log group(s)" in rows["access_denied"].observed
    # The endpoint's container logs were searched too (this one has written none)
    assert "not readable: /aws/sagemaker/Endpoints/DreamBoothPipeline-sd" in rows["access_denied"].observed
    # And the report shows the table
    report.assumptions, report.images = list(rows.values()), []
    markdown = acceptance.render_markdown(report.to_dict())
    assert "| the lock's values for the region are what JumpStart's metadata resolves" in markdown


@mock_aws
def test_the_log_rows_are_contradicted_by_what_the_logs_hold_and_not_observed_without_them():
    session = boto3.Session(region_name="us-east-1")
    logs = session.client("logs")
    since = int(time.time() * 1000) - 5000
    logged(
        session,
        "/fn/a",
        "ClientError: An error occurred (AccessDenied) when calling the PutObject operation",
        cold_start_line("1.40.0"),
    )
    logged(session, "/aws/sagemaker/TrainingJobs", "job-1/algo-1 AccessDenied reading s3://jumpstart-cache-prod")
    status, seen = acceptance.observe_access_denied(logs, ["/fn/a"], "job-1", since)
    assert status == "contradicted" and "2 line(s) with AccessDenied" in seen and "PutObject" in seen
    assert acceptance.observe_access_denied(logs, ["/not/there"], None, since)[0] == "not observed"
    status, seen = acceptance.observe_sdk_versions(logs, ["/fn/a"], since, expected="1.44.8")
    assert status == "contradicted" and seen == "a: botocore 1.40.0"
    assert acceptance.observe_sdk_versions(logs, ["/not/there"], since, "1.44.8")[0] == "not observed"


class TrainingJobs:
    """DescribeTrainingJob as SageMaker answers it for a finished job (its default output: model.tar.gz)."""

    def __init__(self, uri):
        self.uri = uri

    def describe_training_job(self, TrainingJobName):
        return {"TrainingJobName": TrainingJobName, "ModelArtifacts": {"S3ModelArtifacts": self.uri}}


def packaging_log(capsys, s3, training_output):
    """The real packaging handler (lambda/training/model_tasks.py) run on `training_output`: its log lines."""
    from emulator.lambda_runtime import load
    from emulator.lambdas import FunctionSpec, LambdaContext

    capsys.readouterr()
    code = lambda_dir("training")
    # A service name of its own: Powertools adds its stdout handler only to a logging.Logger that has
    # none, and an earlier test's handler of the same name would write to that test's captured stdout.
    module = load(
        code,
        "model_tasks",
        {
            "INFERENCE_SCRIPT_URI": "s3://jumpstart/inference.tar.gz",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_SERVICE_NAME": f"package-{uuid.uuid4().hex}",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    )
    module.s3 = s3
    context = LambdaContext(FunctionSpec("package", "Package", code, "model_tasks.package", {}))
    module.package({"modelUri": training_output}, context)
    return [line for line in capsys.readouterr().out.splitlines() if line.strip()], context.aws_request_id


def tarball(files):
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


@mock_aws
def test_the_training_output_row_reads_what_the_packaging_step_found_in_the_tarball(capsys):
    # Given a finished job whose output is SageMaker's default model.tar.gz, without code/ (what the
    # offline tests assume), and the packaging function's log lines for it
    session = boto3.Session(region_name="us-east-1")
    s3, logs = session.client("s3"), session.client("logs")
    for bucket in ("data", "jumpstart"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="jumpstart", Key="inference.tar.gz", Body=tarball({"inference.py": b"serve"}))
    since = int(time.time() * 1000) - 5000
    uri = "s3://data/models/d/1/job/output/model.tar.gz"
    s3.put_object(Bucket="data", Key=uri[len("s3://data/") :], Body=tarball({"unet/w.bin": b"w"}))
    lines, request = packaging_log(capsys, s3, uri)
    logged(
        session,
        "/fn/package",
        *lines,
        f"REPORT RequestId: {request}\tDuration: 212345.67 ms\tBilled Duration: 212346 ms\tMemory Size: 1769 MB",
    )
    logged(session, "/fn/other", "an ordinary line")
    groups = ["/fn/other", "/fn/package"]
    output, why = acceptance.training_output_of(TrainingJobs(uri), "job")
    assert (output, why) == (uri, "")
    # Then the row is confirmed from the line for this very output, and the packaging time is measured
    status, seen = acceptance.observe_training_output(logs, groups, output, why, since)
    assert status == "confirmed" and seen.startswith(f"{uri} had no code/inference.py: the packaging step added")
    status, seen = acceptance.observe_packaging_time(logs, groups, output, why, since)
    assert (status, seen) == ("confirmed", f"packaging took 212 s (24% of the 900 s timeout) for {uri}")
    # A line for another output is not this run's
    other = "s3://data/models/d/2/job/output/model.tar.gz"
    assert acceptance.observe_training_output(logs, groups, other, "", since)[0] == "not observed"
    # An output with its own code/inference.py contradicts it; a packaging at its timeout too
    with_code = "s3://data/models/d/3/job/output/model.tar.gz"
    s3.put_object(
        Bucket="data",
        Key=with_code[len("s3://data/") :],
        Body=tarball({"unet/w.bin": b"w", "code/inference.py": b"own"}),
    )
    lines, request = packaging_log(capsys, s3, with_code)
    logged(session, "/fn/package", *lines, f"REPORT RequestId: {request}\tDuration: 900000.00 ms\tStatus: timeout")
    status, seen = acceptance.observe_training_output(logs, groups, with_code, "", since)
    assert status == "contradicted" and "has code/inference.py itself" in seen
    assert acceptance.observe_packaging_time(logs, groups, with_code, "", since)[0] == "contradicted"
    # No training job: nothing to observe
    assert acceptance.training_output_of(TrainingJobs(uri), None) == (None, "no training job ran")
    assert acceptance.observe_training_output(logs, groups, None, "no training job ran", since) == (
        "not observed",
        "no training job ran",
    )


@mock_aws
def test_access_denied_is_searched_in_the_endpoints_container_logs_too():
    session = boto3.Session(region_name="us-east-1")
    since = int(time.time() * 1000) - 5000
    logged(session, "/fn/a", "an ordinary line")
    logged(
        session,
        acceptance.ENDPOINT_LOG_GROUP_PREFIX + "DreamBoothPipeline-sd",
        "botocore.exceptions.ClientError: An error occurred (AccessDenied) when calling the GetObject operation",
    )
    status, seen = acceptance.observe_access_denied(
        session.client("logs"), ["/fn/a"], None, since, "DreamBoothPipeline-sd"
    )
    assert status == "contradicted" and "/aws/sagemaker/Endpoints/DreamBoothPipeline-sd: botocore" in seen


def test_the_history_limit_is_the_one_the_synth_budget_uses():
    """Declared once (stacks/shared/sfn_budget.py): a second literal would drift from the synth-time check."""
    import ast
    import inspect

    from stacks.shared import sfn_budget

    tree = ast.parse(inspect.getsource(acceptance))
    assigned = [
        t.id
        for node in ast.walk(tree)
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    ]
    assert "HISTORY_EVENT_LIMIT" not in assigned
    assert acceptance.HISTORY_EVENT_LIMIT == sfn_budget.HISTORY_EVENT_LIMIT
    assert f"fewer than {sfn_budget.HISTORY_EVENT_LIMIT:,}" in acceptance.assumed_texts(config())["history_events"]


def test_the_history_row_compares_with_the_emulators_count():
    assert acceptance.compare_history({"deploy": [100, 140]}, {"deploy": [120]})[0] == "confirmed"
    status, seen = acceptance.compare_history({"deploy": [400]}, {"deploy": [120]})
    assert status == "contradicted" and seen == "deploy: AWS 400 events (most of 1 execution(s)), the emulator 120"
    assert acceptance.compare_history({}, {"deploy": [120]})[0] == "not observed"
    assert acceptance.compare_history({"train": [90]}, None, "moto missing") == (
        "not observed",
        "train: AWS 90 events (most of 1 execution(s)); the emulator's figures: moto missing",
    )
    assert acceptance.compare_history({"train": [25_000]}, None)[0] == "contradicted"


def test_the_lock_row_is_contradicted_when_jumpstart_resolves_other_values(monkeypatch):
    from scripts import refresh_jumpstart_lock as jumpstart

    jumpstart_fixture.local_metadata(monkeypatch)
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    status, seen = acceptance.observe_lock(session, "us-east-1", LOCK_FILE)  # the committed last-known values
    assert status == "contradicted" and seen.startswith("model_version: locked *, JumpStart 9.9.1; training_image_uri")
    monkeypatch.setattr(jumpstart, "sdk_installed", lambda: False)
    assert acceptance.observe_lock(session, "us-east-1", LOCK_FILE)[0] == "not observed"


def test_the_scaling_rows_come_from_the_runs_scaling_stages():
    idle = config().serving.idle_minutes * 60
    report = acceptance.Report(
        backend="aws",
        emulated=False,
        region="us-east-1",
        dataset="d",
        stages=[
            acceptance.Stage(acceptance.SCALE_IN_STAGE, idle + 120.0, "no instance left"),
            acceptance.Stage(acceptance.FROM_ZERO_STAGE, 1200.0),
        ],
    )
    found = acceptance.observe_times(report, config())
    assert found["scale_in"][0] == "confirmed"
    assert (
        found["scale_out_from_zero"][0] == "contradicted"
        and "the request at zero took 20.0 min" in found["scale_out_from_zero"][1]
    )
    report.stages[0].detail = "still 1 instance(s): gave up waiting"
    assert acceptance.observe_times(report, config())["scale_in"][0] == "contradicted"
