"""Autoscaling of the asynchronous endpoint's variant: from zero instances, and back to zero.

Registered by the deploy state machine once the endpoint serves the new config, and again on every
way a deployment ends after it removed it: removed before an UpdateEndpoint only when the update
changes what SageMaker refuses for a scalable target (a variant's instance type, or a variant that
goes; a new model alone is allowed: "Update endpoints that use auto scaling"). The dispatcher's
periodic check registers it again on an InService endpoint that lost it. Application Auto Scaling
and CloudWatch do the scaling; nothing here runs while the endpoint works:
- scalable target: MinCapacity 0 (1 when idleMinutes is 0), MaxCapacity endpointMaxInstances;
- target tracking on ApproximateBacklogSizePerInstance (queued requests per instance), scale-in
  disabled: more instances for a backlog, never fewer while work is queued;
- a step policy (+1 instance) triggered by an alarm on HasBacklogWithoutCapacity: target tracking
  cannot scale out from zero, this starts the first instance;
- a step policy (exactly 0 instances) triggered by an alarm on ApproximateBacklogSize below 1 for
  idleMinutes one-minute periods: after idleMinutes without a queued or running request, every
  instance goes and billing stops. Missing data counts as no backlog.
The alarms are named `<endpoint>-scale-out-from-zero` and `<endpoint>-scale-in-when-idle`.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from dreambooth_shared.contract import SCALABLE_DIMENSION, VARIANT_NAME

TRACKING_POLICY = "backlog-per-instance"
FROM_ZERO_POLICY = "scale-out-from-zero"
IDLE_POLICY = "scale-in-when-idle"
SCALE_OUT_COOLDOWN_S = 300
# The scale-out alarm fires after this many one-minute periods with a backlog and no instance.
SCALE_OUT_ALARM_PERIODS = 2
METRIC_PERIOD_S = 60


def resource_id(endpoint: str) -> str:
    return f"endpoint/{endpoint}/variant/{VARIANT_NAME}"


def alarm_name(endpoint: str, policy: str) -> str:
    return f"{endpoint}-{policy}"


def register_scaling(
    autoscaling: Any, cloudwatch: Any, endpoint: str, *, max_instances: int, target_backlog: int, idle_minutes: int
) -> dict[str, Any]:
    """Scalable target, the three policies and their two alarms. Idempotent (puts replace)."""
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource_id(endpoint),
        "ScalableDimension": SCALABLE_DIMENSION,
    }
    minimum = 0 if idle_minutes else 1
    autoscaling.register_scalable_target(**target, MinCapacity=minimum, MaxCapacity=max_instances)
    dimensions = [{"Name": "EndpointName", "Value": endpoint}]
    autoscaling.put_scaling_policy(
        PolicyName=TRACKING_POLICY,
        PolicyType="TargetTrackingScaling",
        **target,
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": float(target_backlog),
            "CustomizedMetricSpecification": {
                "MetricName": "ApproximateBacklogSizePerInstance",
                "Namespace": "AWS/SageMaker",
                "Dimensions": dimensions,
                "Statistic": "Average",
            },
            "DisableScaleIn": True,
            "ScaleOutCooldown": SCALE_OUT_COOLDOWN_S,
        },
    )
    _step_policy_with_alarm(
        autoscaling,
        cloudwatch,
        endpoint,
        target,
        FROM_ZERO_POLICY,
        {
            "AdjustmentType": "ChangeInCapacity",
            "MetricAggregationType": "Average",
            "Cooldown": SCALE_OUT_COOLDOWN_S,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
        },
        AlarmDescription=f"Requests queued for {endpoint} with no instance: start one",
        MetricName="HasBacklogWithoutCapacity",
        Statistic="Average",
        EvaluationPeriods=SCALE_OUT_ALARM_PERIODS,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="missing",
    )
    applied = {
        "resourceId": resource_id(endpoint),
        "min": minimum,
        "max": max_instances,
        "targetBacklogPerInstance": target_backlog,
        "idleMinutes": idle_minutes,
    }
    if not idle_minutes:
        _delete_idle_policy(autoscaling, cloudwatch, endpoint, target)
        return applied
    _step_policy_with_alarm(
        autoscaling,
        cloudwatch,
        endpoint,
        target,
        IDLE_POLICY,
        {
            "AdjustmentType": "ExactCapacity",
            "MetricAggregationType": "Maximum",
            "StepAdjustments": [{"MetricIntervalUpperBound": 0.0, "ScalingAdjustment": 0}],
        },
        AlarmDescription=f"No request queued or running on {endpoint} for {idle_minutes} minutes: scale to zero",
        MetricName="ApproximateBacklogSize",
        Statistic="Maximum",
        EvaluationPeriods=idle_minutes,
        ComparisonOperator="LessThanThreshold",
        TreatMissingData="breaching",
    )
    return applied


def _step_policy_with_alarm(
    autoscaling: Any,
    cloudwatch: Any,
    endpoint: str,
    target: dict[str, str],
    policy: str,
    configuration: dict[str, Any],
    **alarm: Any,
) -> None:
    """A step scaling policy, and the alarm on one of the endpoint's metrics (threshold 1) that triggers it."""
    arn = autoscaling.put_scaling_policy(
        PolicyName=policy, PolicyType="StepScaling", **target, StepScalingPolicyConfiguration=configuration
    )["PolicyARN"]
    cloudwatch.put_metric_alarm(
        AlarmName=alarm_name(endpoint, policy),
        Namespace="AWS/SageMaker",
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}],
        Period=METRIC_PERIOD_S,
        Threshold=1.0,
        AlarmActions=[arn],
        **alarm,
    )


def _delete_idle_policy(autoscaling: Any, cloudwatch: Any, endpoint: str, target: dict[str, str]) -> None:
    cloudwatch.delete_alarms(AlarmNames=[alarm_name(endpoint, IDLE_POLICY)])
    try:
        autoscaling.delete_scaling_policy(PolicyName=IDLE_POLICY, **target)
    except ClientError as error:
        if not _missing(error):
            raise


def _missing(error: ClientError) -> bool:
    # AWS answers ObjectNotFoundException; moto a ValidationException "No scalable target found".
    code = error.response.get("Error", {}).get("Code", "")
    return code == "ObjectNotFoundException" or "No scalable target" in str(error) or "No scaling policy" in str(error)


def deregister_scaling(autoscaling: Any, cloudwatch: Any, endpoint: str) -> bool:
    """Remove the scalable target (with it its policies) and the two alarms. False when there was none."""
    cloudwatch.delete_alarms(AlarmNames=[alarm_name(endpoint, FROM_ZERO_POLICY), alarm_name(endpoint, IDLE_POLICY)])
    try:
        autoscaling.deregister_scalable_target(
            ServiceNamespace="sagemaker", ResourceId=resource_id(endpoint), ScalableDimension=SCALABLE_DIMENSION
        )
        return True
    except ClientError as error:
        if _missing(error):
            return False
        raise


def missing_parts(autoscaling: Any, cloudwatch: Any, endpoint: str) -> list[str]:
    """What of `register_scaling`'s registration is not there ([] when all is): the scalable target,
    its policies, their alarms. A registration that stopped half way (the target registered, then
    an error) or a deregistration that deleted the alarms and then failed leaves a target without
    the from-zero alarm: an endpoint at zero instances would then never start. The idle policy and
    alarm are expected when the target's MinCapacity is 0 (idleMinutes > 0)."""
    resource = resource_id(endpoint)
    targets = autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[resource], ScalableDimension=SCALABLE_DIMENSION
    )["ScalableTargets"]
    if not targets:
        return ["scalable target"]
    policies = [TRACKING_POLICY, FROM_ZERO_POLICY] + ([IDLE_POLICY] if targets[0]["MinCapacity"] == 0 else [])
    found = {
        p["PolicyName"]
        for p in autoscaling.describe_scaling_policies(
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension=SCALABLE_DIMENSION,
            PolicyNames=policies,
        )["ScalingPolicies"]
    }
    alarms = [alarm_name(endpoint, policy) for policy in policies if policy != TRACKING_POLICY]
    present = {a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNames=alarms)["MetricAlarms"]}
    return [f"policy {p}" for p in policies if p not in found] + [f"alarm {a}" for a in alarms if a not in present]


def variant_types(sagemaker: Any, config_name: str) -> dict[str, str]:
    """{variant name: instance type} of an endpoint config."""
    config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    return {v["VariantName"]: v.get("InstanceType", "") for v in config["ProductionVariants"]}


def update_blocked_by_scaling(sagemaker: Any, endpoint: str, new_config: str) -> str | None:
    """Why an UpdateEndpoint of `endpoint` to `new_config` needs its scalable targets removed first
    (SageMaker refuses it for a variant that changes instance type or goes), or None."""
    current = sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"]
    old, new = variant_types(sagemaker, current), variant_types(sagemaker, new_config)
    for variant, instance_type in old.items():
        if variant not in new:
            return f"variant {variant} of {current} is not in {new_config}"
        if new[variant] != instance_type:
            return f"variant {variant} changes instance type from {instance_type} to {new[variant]}"
    return None


def current_config(sagemaker: Any, endpoint: str) -> tuple[str | None, str | None]:
    """(EndpointStatus, EndpointConfigName) now; (None, None) when the endpoint does not exist."""
    try:
        answer = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ValidationException":
            return None, None
        raise
    return answer["EndpointStatus"], answer["EndpointConfigName"]
