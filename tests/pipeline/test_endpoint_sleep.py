"""The idle check's decisions (lambda/pipeline/endpoint_sleep.py) on moto, one situation each."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.sagemaker.models import sagemaker_backends

import endpoint_sleep
from endpoint_sleep import IdleCheck, IdleSettings

REGION, ACCOUNT = "us-east-1", "123456789012"
ENDPOINT, MODEL = "Stack-sd", "dog-20261120100000"
LONG_AGO = "2026-01-01T00:00:00.000Z"


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        ddb = boto3.client("dynamodb")
        for table, key in (("registry", "modelId"), ("state", "pk")):
            ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                             AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                             KeySchema=[{"AttributeName": key, "KeyType": "HASH"}])
        ddb.put_item(TableName="registry", Item={"modelId": {"S": "__live__"}, "liveModelId": {"S": MODEL},
                                                 "updatedAt": {"S": LONG_AGO}})
        sm = boto3.client("sagemaker")
        sm.create_model(ModelName=MODEL, ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/r",
                        PrimaryContainer={"Image": "1.dkr.ecr.us-east-1.amazonaws.com/x:1"})
        sm.create_endpoint_config(EndpointConfigName=MODEL, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": MODEL, "InitialInstanceCount": 1,
            "InstanceType": "ml.g4dn.2xlarge"}])
        sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=MODEL)
        sfn = boto3.client("stepfunctions")
        machine = sfn.create_state_machine(
            name="deploy", roleArn=f"arn:aws:iam::{ACCOUNT}:role/r",
            definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}}),
        )["stateMachineArn"]
        yield machine


def check(machine: str, idle_minutes: int = 60) -> IdleCheck:
    settings = IdleSettings(registry_table="registry", state_table="state", endpoint_name=ENDPOINT,
                            deploy_state_machine_arn=machine, idle_minutes=idle_minutes)
    return IdleCheck(settings, dynamodb=boto3.client("dynamodb"), sagemaker=boto3.client("sagemaker"),
                     cloudwatch=boto3.client("cloudwatch"), sfn=boto3.client("stepfunctions"),
                     autoscaling=boto3.client("application-autoscaling"))


def later(hours: float = 3) -> datetime:
    return datetime.now(timezone.utc) + timedelta(hours=hours)


def endpoint_exists() -> bool:
    return bool(boto3.client("sagemaker").list_endpoints()["Endpoints"])


def pointer() -> dict:
    item = boto3.client("dynamodb").get_item(TableName="registry", Key={"modelId": {"S": "__live__"}})["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def test_idle_minutes_zero_never_sleeps(aws):
    assert check(aws, idle_minutes=0).run(later(1000), "r").action == "disabled"
    assert endpoint_exists()


@pytest.mark.parametrize("status", ["Creating", "Updating", "SystemUpdating", "RollingBack", "Failed"])
def test_an_endpoint_that_is_not_in_service_is_left_alone(aws, status):
    sagemaker_backends[ACCOUNT][REGION].endpoints[ENDPOINT].endpoint_status = status
    decision = check(aws).run(later(), "r")
    assert (decision.action, decision.detail) == ("busy", status) and endpoint_exists()


def test_a_running_deployment_blocks_the_sleep(aws):
    boto3.client("stepfunctions").start_execution(stateMachineArn=aws, input="{}")
    assert check(aws).run(later(), "r").action == "deploying" and endpoint_exists()


def test_a_held_deployment_lock_blocks_the_sleep(aws):
    boto3.client("dynamodb").put_item(TableName="state", Item={"pk": {"S": "deploy-lock"}, "owner": {"S": "arn:x"}})
    assert check(aws).run(later(), "r").action == "deploying" and endpoint_exists()
    assert "endpointState" not in pointer()


def test_a_use_recorded_during_the_check_calls_the_sleep_off(aws, monkeypatch):
    # Given a generation request recording its use between the check's read and its mark
    idle = check(aws)
    original = idle._take_lock

    def take_lock_then_request_arrives(request_id, now):
        boto3.client("dynamodb").update_item(
            TableName="registry", Key={"modelId": {"S": "__live__"}}, UpdateExpression="SET lastUsedAt = :now",
            ExpressionAttributeValues={":now": {"S": endpoint_sleep.iso(now)}})
        return original(request_id, now)

    monkeypatch.setattr(idle, "_take_lock", take_lock_then_request_arrives)
    decision = idle.run(later(), "r")
    # Then the endpoint stays, unmarked, and the lock is free
    assert decision.action == "in_use" and endpoint_exists() and "endpointState" not in pointer()
    lock = boto3.client("dynamodb").get_item(TableName="state", Key={"pk": {"S": "deploy-lock"}})["Item"]
    assert "owner" not in lock


def test_a_failed_delete_leaves_the_registry_saying_awake(aws, monkeypatch):
    idle = check(aws)

    def refuse(**_):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "DeleteEndpoint")

    monkeypatch.setattr(idle.sagemaker, "delete_endpoint", refuse)
    with pytest.raises(ClientError):
        idle.run(later(), "r")
    assert endpoint_exists() and "endpointState" not in pointer()


def test_sleep_keeps_model_and_config_and_records_the_episode(aws):
    decision = check(aws).run(later(), "r")
    assert decision.action == "slept" and not endpoint_exists()
    state = pointer()
    assert (state["endpointState"], state["endpointConfigName"], state["wakeAttempt"]) == ("asleep", MODEL, "0")
    assert boto3.client("sagemaker").describe_endpoint_config(EndpointConfigName=MODEL)["EndpointConfigName"] == MODEL


def test_scaling_registration_is_idempotent_and_deregistration_tolerates_none(aws):
    autoscaling = boto3.client("application-autoscaling")
    for _ in range(2):
        endpoint_sleep.register_scaling(autoscaling, ENDPOINT, min_instances=2, max_instances=4, target_invocations=5)
    (target,) = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 4)
    assert endpoint_sleep.deregister_scaling(autoscaling, ENDPOINT) is True
    assert endpoint_sleep.deregister_scaling(autoscaling, ENDPOINT) is False
