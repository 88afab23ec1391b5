"""Autoscaling of the asynchronous endpoint (dreambooth_shared/autoscaling.py) against moto's
Application Auto Scaling and CloudWatch: what is registered, and what deregistering removes."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from dreambooth_shared import autoscaling

REGION = "us-east-1"
ENDPOINT = "Stack-sd"


@pytest.fixture
def clients():
    with mock_aws():
        yield (
            boto3.client("application-autoscaling", region_name=REGION),
            boto3.client("cloudwatch", region_name=REGION),
        )


def registered(clients):
    scaling, cloudwatch = clients
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    policies = {
        p["PolicyName"]: p for p in scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    }
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    return target, policies, alarms


def test_scales_to_zero_after_the_idle_time_and_from_zero_on_a_backlog(clients):
    applied = autoscaling.register_scaling(*clients, ENDPOINT, max_instances=3, target_backlog=2, idle_minutes=10)
    assert applied["min"] == 0
    target, policies, alarms = registered(clients)
    assert target["ResourceId"] == f"endpoint/{ENDPOINT}/variant/AllTraffic"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 3)
    # Target tracking on the backlog per instance, never scaling in itself
    tracking = policies["backlog-per-instance"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 2.0 and tracking["DisableScaleIn"] is True
    assert tracking["CustomizedMetricSpecification"]["MetricName"] == "ApproximateBacklogSizePerInstance"
    # The first instance: +1 when HasBacklogWithoutCapacity has been 1 for two minutes
    from_zero = alarms[f"{ENDPOINT}-scale-out-from-zero"]
    assert (from_zero["MetricName"], from_zero["Threshold"], from_zero["ComparisonOperator"]) == (
        "HasBacklogWithoutCapacity",
        1.0,
        "GreaterThanOrEqualToThreshold",
    )
    assert from_zero["AlarmActions"] == [policies["scale-out-from-zero"]["PolicyARN"]]
    assert policies["scale-out-from-zero"]["StepScalingPolicyConfiguration"]["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}
    ]
    # The last instance: exactly 0 after idleMinutes one-minute periods without a request (missing = none)
    idle = alarms[f"{ENDPOINT}-scale-in-when-idle"]
    assert (idle["MetricName"], idle["Period"], idle["EvaluationPeriods"], idle["TreatMissingData"]) == (
        "ApproximateBacklogSize",
        60,
        10,
        "breaching",
    )
    assert (idle["Threshold"], idle["ComparisonOperator"]) == (1.0, "LessThanThreshold")
    to_zero = policies["scale-in-when-idle"]["StepScalingPolicyConfiguration"]
    assert to_zero["AdjustmentType"] == "ExactCapacity" and to_zero["StepAdjustments"][0]["ScalingAdjustment"] == 0
    assert idle["AlarmActions"] == [policies["scale-in-when-idle"]["PolicyARN"]]


def test_idle_minutes_zero_keeps_one_instance_and_no_idle_policy(clients):
    autoscaling.register_scaling(*clients, ENDPOINT, max_instances=1, target_backlog=2, idle_minutes=10)
    autoscaling.register_scaling(*clients, ENDPOINT, max_instances=1, target_backlog=2, idle_minutes=0)
    target, policies, alarms = registered(clients)
    assert target["MinCapacity"] == 1
    assert set(policies) == {"backlog-per-instance", "scale-out-from-zero"}
    assert set(alarms) == {f"{ENDPOINT}-scale-out-from-zero"}


def test_deregistering_removes_target_policies_and_alarms_and_is_idempotent(clients):
    scaling, cloudwatch = clients
    autoscaling.register_scaling(*clients, ENDPOINT, max_instances=2, target_backlog=2, idle_minutes=5)
    assert autoscaling.deregister_scaling(*clients, ENDPOINT) is True
    assert scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []
    assert autoscaling.deregister_scaling(*clients, ENDPOINT) is False
