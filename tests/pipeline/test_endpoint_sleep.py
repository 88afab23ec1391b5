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


@pytest.mark.parametrize("idle_minutes", [60, 1435, 1436, 10080])
def test_the_invocations_query_stays_within_cloudwatch_limits(aws, idle_minutes):
    # CloudWatch refuses more than 1440 points per request (moto does not): the request as sent.
    idle = check(aws, idle_minutes=idle_minutes)
    sent = []
    idle.cloudwatch.meta.events.register("provide-client-params.cloudwatch.GetMetricStatistics",
                                         lambda params, **_: sent.append(dict(params)))
    assert idle.run(later(24 * 8), "r").action == "slept"
    (params,) = sent
    window = (params["EndTime"] - params["StartTime"]).total_seconds()
    assert window >= idle_minutes * 60 and params["Period"] % 60 == 0
    assert -(-window // params["Period"]) <= 1440
    assert params["Period"] == (60 if idle_minutes <= 1435 else 120 if idle_minutes == 1436 else 480)


def test_the_metric_period_is_the_smallest_minute_multiple_within_the_limit():
    assert endpoint_sleep.metric_period_s(timedelta(minutes=10085)) == 480
    assert endpoint_sleep.metric_period_s(timedelta(minutes=1440)) == 60


def test_the_lock_expiry_is_on_the_wall_clock_when_the_event_comes_late(aws, monkeypatch):
    # Given the schedule's event delivered 10 minutes late (its time 10 minutes before the clock)
    idle = check(aws)
    fired = later()
    wall = fired + timedelta(minutes=10)
    idle.clock = lambda: wall
    seen = {}
    original = idle._mark_asleep

    def look_at_the_lock(*args):
        lock = boto3.client("dynamodb").get_item(TableName="state", Key={"pk": {"S": "deploy-lock"}})["Item"]
        seen["until"] = endpoint_sleep.parse_iso(lock["idleUntil"]["S"])
        return original(*args)

    monkeypatch.setattr(idle, "_mark_asleep", look_at_the_lock)
    assert idle.run(fired, "r").action == "slept"
    # Then the lock held during the sleep expires IDLE_LOCK_S after the wall clock, not after the event
    assert seen["until"] >= wall + timedelta(seconds=endpoint_sleep.IDLE_LOCK_S - 5)


def mark_wake_failed() -> None:
    boto3.client("dynamodb").update_item(
        TableName="registry", Key={"modelId": {"S": "__live__"}},
        UpdateExpression="SET endpointState = :f, endpointConfigName = :c, wakeAttempt = :a, wakeFailureReason = :r",
        ExpressionAttributeValues={":f": {"S": "wake_failed"}, ":c": {"S": MODEL}, ":a": {"N": "1"},
                                   ":r": {"S": "timed out"}})


def test_an_endpoint_in_service_after_a_failed_wake_up_is_recorded_awake(aws):
    # Given a wake-up marked failed (it timed out) whose endpoint SageMaker then finished
    mark_wake_failed()
    # When the check runs soon after
    decision = check(aws).run(datetime.now(timezone.utc) + timedelta(minutes=10), "r")
    # Then the registry says awake (the normal idle rules apply), the endpoint stays
    assert decision.action == "in_use" and endpoint_exists()
    state = pointer()
    assert "endpointState" not in state and "wakeFailureReason" not in state and state["liveModelId"] == MODEL
    lock = boto3.client("dynamodb").get_item(TableName="state", Key={"pk": {"S": "deploy-lock"}})["Item"]
    assert "owner" not in lock


def test_an_idle_endpoint_after_a_failed_wake_up_goes_to_sleep(aws):
    mark_wake_failed()
    decision = check(aws).run(later(), "r")
    assert decision.action == "slept" and not endpoint_exists()
    assert pointer()["endpointState"] == "asleep"
    assert boto3.client("sagemaker").describe_model(ModelName=MODEL)["ModelName"] == MODEL


def test_a_failed_wake_up_without_an_endpoint_stays_failed(aws):
    mark_wake_failed()
    boto3.client("sagemaker").delete_endpoint(EndpointName=ENDPOINT)
    assert check(aws).run(later(), "r").action == "asleep" and pointer()["endpointState"] == "wake_failed"


def test_a_failed_wake_up_is_left_alone_while_a_deployment_runs(aws):
    mark_wake_failed()
    boto3.client("stepfunctions").start_execution(stateMachineArn=aws, input="{}")
    assert check(aws).run(later(), "r").action == "asleep"
    assert endpoint_exists() and pointer()["endpointState"] == "wake_failed"


def forget_the_live_model() -> None:
    boto3.client("dynamodb").delete_item(TableName="registry", Key={"modelId": {"S": "__live__"}})


def test_an_idle_endpoint_without_a_live_model_is_deleted_keeping_model_and_config(aws):
    # Given a first deployment that timed out: its endpoint InService, no live model recorded
    forget_the_live_model()
    decision = check(aws).run(later(), "r")
    assert (decision.action, decision.detail) == ("orphan_deleted", MODEL) and not endpoint_exists()
    sm = boto3.client("sagemaker")
    assert sm.describe_model(ModelName=MODEL)["ModelName"] == MODEL
    assert sm.describe_endpoint_config(EndpointConfigName=MODEL)["EndpointConfigName"] == MODEL
    lock = boto3.client("dynamodb").get_item(TableName="state", Key={"pk": {"S": "deploy-lock"}})["Item"]
    assert "owner" not in lock


def test_an_endpoint_without_a_live_model_waits_for_the_idle_window(aws):
    forget_the_live_model()
    decision = check(aws).run(datetime.now(timezone.utc) + timedelta(minutes=10), "r")
    assert decision.action == "no_live_model" and endpoint_exists()


def test_an_endpoint_without_a_live_model_is_left_alone_while_a_deployment_runs_or_holds_the_lock(aws):
    forget_the_live_model()
    boto3.client("stepfunctions").start_execution(stateMachineArn=aws, input="{}")
    assert check(aws).run(later(), "r").action == "no_live_model" and endpoint_exists()


def test_an_endpoint_without_a_live_model_is_kept_when_the_lock_is_held(aws):
    forget_the_live_model()
    boto3.client("dynamodb").put_item(TableName="state", Item={"pk": {"S": "deploy-lock"}, "owner": {"S": "arn:x"}})
    assert check(aws).run(later(), "r").action == "deploying" and endpoint_exists()


def test_a_model_going_live_during_the_orphan_check_keeps_the_endpoint(aws, monkeypatch):
    forget_the_live_model()
    idle = check(aws)
    original = idle._take_lock

    def take_lock_after_a_deployment_finished(request_id, now):
        boto3.client("dynamodb").put_item(TableName="registry", Item={
            "modelId": {"S": "__live__"}, "liveModelId": {"S": MODEL}, "updatedAt": {"S": LONG_AGO}})
        return original(request_id, now)

    monkeypatch.setattr(idle, "_take_lock", take_lock_after_a_deployment_finished)
    assert idle.run(later(), "r").action == "no_live_model" and endpoint_exists()
