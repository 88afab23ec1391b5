"""`make acceptance` (scripts/acceptance.py): the emulator backend runs the whole flow; the AWS
backend's AWS-side steps (finding or deploying the stack, copying the public sample, removing
what the run created) run against moto."""

from __future__ import annotations

import json
import shutil
from datetime import datetime

import boto3
from moto import mock_aws

from scripts import acceptance
from stacks.training.jumpstart_lock import LOCK_FILE
from tests import jumpstart_fixture
from tests.conftest import ROOT
from tests.pipeline.conftest import jpeg_bytes
from tests.quota_harness import QuotaHarness
from stacks.config import AppConfig


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
        "a photo of a Doppler dog on the sea", "a photo of a Doppler dog with a hat",
        "a photo of a Doppler dog with Donald Trump"]
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
        patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": role}])
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="jumpstart-cache-prod-us-east-1")
    for name in ("alvan-nee-1.jpeg", "alvan-nee-2.jpeg", "alvan-nee-3.jpeg"):
        s3.put_object(Bucket="jumpstart-cache-prod-us-east-1", Key=acceptance.SAMPLE_PREFIX + name,
                      Body=jpeg_bytes())
    s3.put_object(Bucket="jumpstart-cache-prod-us-east-1", Key=acceptance.SAMPLE_PREFIX + "dataset_info.json",
                  Body=b'{"instance_prompt": "a photo of a Doppler dog"}')
    s3.create_bucket(Bucket="data-bucket")
    jumpstart_fixture.publish(boto3.Session(region_name="us-east-1"))
    commands = []

    def run(command, env):
        # What `cdk deploy` leaves behind: the stack with its outputs
        commands.append(list(command))
        if "deploy" in command:
            boto3.client("cloudformation", region_name="us-east-1").create_stack(
                StackName="DreamBoothPipeline", TemplateBody=json.dumps({
                    "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                    "Outputs": {"BucketName": {"Value": "data-bucket"},
                                "ApiUrl": {"Value": "https://abc.execute-api.us-east-1.amazonaws.com/v1/"}}}))
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
    assert json.loads((tmp_path / PROJECT_LOCK).read_text())["resolved_regions"]["us-east-1"]["model_version"] == "9.9.1"
    assert s3.list_objects_v2(Bucket="jumpstart-cache-prod-us-east-1",
                              Prefix=acceptance.SAMPLE_PREFIX)["KeyCount"] == 4  # source untouched


@mock_aws
def test_destroy_removes_only_what_the_run_created():
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    sagemaker.create_model(ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
                           PrimaryContainer={"Image": "i"})
    sagemaker.create_endpoint_config(EndpointConfigName="m", ProductionVariants=[{
        "VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.g4dn.2xlarge"}])
    sagemaker.create_endpoint(EndpointName="DreamBoothPipeline-sd", EndpointConfigName="m")
    commands = []
    backend = acceptance.AwsBackend(FakeSession(), config(), run=lambda c, e: commands.append(list(c)) or 0)
    report = acceptance.Report(backend="aws", emulated=False, region="us-east-1", dataset="d",
                               endpoint_name="DreamBoothPipeline-sd")
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
    sagemaker.create_model(ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
                           PrimaryContainer={"Image": "i"})
    sagemaker.create_endpoint_config(EndpointConfigName="m", ProductionVariants=[{
        "VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.g4dn.2xlarge"}])
    sagemaker.create_endpoint(EndpointName="DreamBoothPipeline-sd", EndpointConfigName="m")
    earlier = tmp_path / "20261201T100000Z"
    earlier.mkdir()
    report = acceptance.Report(backend="aws", emulated=False, region="us-east-1", dataset="d",
                               endpoint_name="DreamBoothPipeline-sd")
    report.created["endpoint"] = True
    acceptance.write_report(report, earlier)
    backend = acceptance.AwsBackend(FakeSession(), config(), run=lambda c, e: 0)
    path = acceptance.latest_report(tmp_path)
    assert acceptance.destroy_previous(backend, path, print) == [
        "endpoint DreamBoothPipeline-sd (its model and config stay: they cost nothing)"]
    assert sagemaker.list_endpoints()["Endpoints"] == []
