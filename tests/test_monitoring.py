"""The Monitoring construct as synthesized: alarms, their topic, the dashboard; spot in the template."""

from __future__ import annotations

import fnmatch
import json
from typing import Optional

import pytest
from aws_cdk.assertions import Match, Template

import endpoint_wait  # the Lambda module (lambda/serving), as the runtime imports it
from dreambooth_shared.contract import VARIANT_NAME
from stacks.monitoring import construct as monitoring
from tests import template_find as find
from tests.conftest import synth_stack


@pytest.fixture(scope="module")
def template(created_stack) -> Template:
    return Template.from_stack(created_stack)


@pytest.fixture(scope="module")
def resources(template) -> dict:
    return template.to_json()["Resources"]


def _watched(props: dict) -> list[dict]:
    """The metrics an alarm watches: its own, or those of its math expression."""
    if "MetricName" in props:
        return [
            {
                "Namespace": props["Namespace"],
                "MetricName": props["MetricName"],
                "Dimensions": props.get("Dimensions", []),
            }
        ]
    return [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]


def alarm(resources: dict, namespace: str, metric_name: Optional[str] = None, **dimensions) -> dict:
    """The properties of the one alarm watching a metric of `namespace` (named `metric_name`, with
    those dimension values, when given)."""

    def watches(props: dict) -> bool:
        return any(
            m["Namespace"] == namespace
            and metric_name in (None, m["MetricName"])
            and all({"Name": k, "Value": v} in m.get("Dimensions", []) for k, v in dimensions.items())
            for m in _watched(props)
        )

    found = find.only(resources, "AWS::CloudWatch::Alarm", watches, f"watching {namespace} {metric_name} {dimensions}")
    return resources[found]["Properties"]


def topic_ref(resources: dict) -> dict:
    return {"Ref": find.topic(resources, "DreamBooth pipeline")}


def topic_key(resources: dict) -> str:
    return find.only(
        resources,
        "AWS::KMS::Key",
        lambda p: p.get("Description") == "Encrypts the DreamBooth pipeline's notifications topic",
        "the notifications key",
    )


def test_every_alarm_goes_to_the_topic_and_treats_missing_data_as_fine(resources):
    alarms = [v["Properties"] for v in resources.values() if v["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(alarms) == 5
    for props in alarms:
        assert props["AlarmActions"] == [topic_ref(resources)]
        assert props["TreatMissingData"] == "notBreaching" and props["EvaluationPeriods"] == 1


@pytest.mark.parametrize("machine_of", [find.training_machine, find.deploy_machine])
def test_a_failed_execution_of_either_state_machine_alarms(resources, machine_of):
    machine = {"Ref": machine_of(resources)}
    props = alarm(resources, "AWS/States", "ExecutionsFailed", StateMachineArn=machine)
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/States", "ExecutionsFailed", "Sum")
    assert props["Dimensions"] == [{"Name": "StateMachineArn", "Value": machine}]
    assert (props["ComparisonOperator"], props["Threshold"], props["Period"]) == (
        "GreaterThanOrEqualToThreshold",
        1,
        300,
    )


def test_endpoint_errors_alarm_on_the_pipelines_endpoint_and_variant(resources):
    props = alarm(resources, "AWS/SageMaker")
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == (
        "AWS/SageMaker",
        "Invocation5XXErrors",
        "Sum",
    )
    assert props["Dimensions"] == [
        {"Name": "EndpointName", "Value": "DreamBoothPipeline-sd"},
        {"Name": "VariantName", "Value": VARIANT_NAME},
    ]
    assert (props["ComparisonOperator"], props["Threshold"]) == ("GreaterThanOrEqualToThreshold", 1)


def test_a_stuck_endpoint_alarms_on_the_waiters_minutes_metric(resources):
    props = alarm(resources, monitoring.METRICS_NAMESPACE)
    # The names the handler emits are the names the alarm watches.
    assert (
        props["MetricName"] == endpoint_wait.METRIC_TRANSITION_MINUTES == monitoring.METRIC_ENDPOINT_TRANSITION_MINUTES
    )
    assert monitoring.METRIC_ENDPOINT_IN_SERVICE == endpoint_wait.METRIC_IN_SERVICE
    assert (props["Namespace"], props["Statistic"]) == ("DreamBoothPipeline", "Maximum")
    assert props["Dimensions"] == [{"Name": "service", "Value": "dreambooth-pipeline"}]
    assert (props["ComparisonOperator"], props["Threshold"]) == ("GreaterThanOrEqualToThreshold", 30)


def test_api_5xx_rate_is_errors_over_requests_of_the_stage(resources):
    props = alarm(resources, "AWS/ApiGateway")
    metrics = {m["Id"]: m for m in props["Metrics"]}
    (expression,) = [m for m in props["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "IF(requests > 0, 100 * errors / requests, 0)" and expression["ReturnData"]
    (stage_id,) = find.of_type(resources, "AWS::ApiGateway::Stage")
    stage = {"Ref": stage_id}
    for metric_id, name in (("errors", "5XXError"), ("requests", "Count")):
        stat = metrics[metric_id]["MetricStat"]
        assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"], stat["Stat"]) == (
            "AWS/ApiGateway",
            name,
            "Sum",
        )
        assert {"Name": "Stage", "Value": stage} in stat["Metric"]["Dimensions"]
        assert [d["Name"] for d in stat["Metric"]["Dimensions"]] == ["ApiName", "Stage"]
    assert (props["ComparisonOperator"], props["Threshold"]) == ("GreaterThanThreshold", 5)


def test_thresholds_come_from_the_configuration():
    resources = Template.from_stack(
        synth_stack(
            {
                "alarmApi5xxPercent": "12",
                "alarmEndpoint5xxErrors": 7,
                "alarmEndpointStuckMinutes": 45,
                "endpointMaxWaitMinutes": 90,
            }
        )
    ).to_json()["Resources"]
    assert alarm(resources, "AWS/ApiGateway")["Threshold"] == 12
    assert alarm(resources, "AWS/SageMaker")["Threshold"] == 7
    assert alarm(resources, monitoring.METRICS_NAMESPACE)["Threshold"] == 45


def test_cloudwatch_alarms_may_use_the_topic_and_its_key_and_nothing_else_may(template, resources):
    key = topic_key(resources)
    # A customer-managed key: CloudWatch cannot use the AWS-managed alias/aws/sns.
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [key, "Arn"]}})
    assert resources[key]["Properties"]["EnableKeyRotation"] is True
    only_this_accounts_alarms = {
        "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
        "ArnLike": {
            "aws:SourceArn": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":cloudwatch:",
                        {"Ref": "AWS::Region"},
                        ":",
                        {"Ref": "AWS::AccountId"},
                        ":alarm:*",
                    ],
                ]
            }
        },
    }
    key_statements = resources[key]["Properties"]["KeyPolicy"]["Statement"]
    (for_cloudwatch,) = [s for s in key_statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert sorted(for_cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert for_cloudwatch["Condition"] == only_this_accounts_alarms
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Action": "sns:Publish",
                            "Effect": "Allow",
                            "Principal": {"Service": "cloudwatch.amazonaws.com"},
                            "Resource": topic_ref(resources),
                            "Condition": only_this_accounts_alarms,
                            "Sid": Match.any_value(),
                        },
                    ]
                )
            }
        },
    )


def test_every_publisher_may_encrypt_with_the_topic_key(resources):
    """Publishers are read from the template: every role with a statement allowing sns:Publish on
    the topic must be allowed kms:GenerateDataKey* and kms:Decrypt on the topic's key."""
    topic = topic_ref(resources)
    key_arn = {"Fn::GetAtt": [topic_key(resources), "Arn"]}
    by_role: dict[str, list] = {}
    for value in resources.values():
        if value["Type"] == "AWS::IAM::Policy":
            for role in value["Properties"]["Roles"]:
                by_role.setdefault(role["Ref"], []).extend(value["Properties"]["PolicyDocument"]["Statement"])

    def allows(statement, action, resource):
        return (
            statement["Effect"] == "Allow"
            and resource in find.listed(statement["Resource"])
            and any(fnmatch.fnmatchcase(action, pattern) for pattern in find.listed(statement["Action"]))
        )

    publishers = {
        role for role, statements in by_role.items() if any(allows(s, "sns:Publish", topic) for s in statements)
    }
    expected = {
        find.role_of(resources, find.training_machine(resources)),
        find.role_of(resources, find.deploy_machine(resources)),
        find.role_of(resources, find.function(resources, "upload_listener.handler")),
    }
    assert expected <= publishers
    for role in publishers:
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            assert any(allows(s, action, key_arn) for s in by_role[role]), (role, action)


def test_dashboard_charts_every_area(resources):
    (dashboard,) = [v["Properties"] for v in resources.values() if v["Type"] == "AWS::CloudWatch::Dashboard"]
    body = json.dumps(dashboard["DashboardBody"])
    for title in (
        "Training executions",
        "Deploy executions",
        "Training time (s) and loss",
        "Endpoint invocations and errors",
        "Endpoint model latency",
        "Endpoint state",
        "API requests and errors",
        "API latency",
        "Generations",
        "Alarms",
    ):
        assert title in body, title
    for metric in (
        "ExecutionsStarted",
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "TrainingSeconds",
        "BillableTrainingSeconds",
        "TrainLoss",
        "Invocations",
        "Invocation4XXErrors",
        "Invocation5XXErrors",
        "ModelLatency",
        "EndpointInService",
        "EndpointTransitionMinutes",
        "4XXError",
        "5XXError",
        "Latency",
        "GenerationsRequested",
        "GenerationsSucceeded",
        "GenerationsFailed",
        "ApproximateNumberOfMessagesVisible",
    ):
        assert f'\\"{metric}\\"' in body, metric


def test_training_metrics_are_published_by_the_state_machine_within_its_namespace(resources):
    machine = find.training_machine(resources)
    publish = find.states(resources[machine])["PublishTrainingMetrics"]
    assert publish["Resource"].endswith(":states:::aws-sdk:cloudwatch:putMetricData")
    assert publish["Parameters"]["Namespace"] == monitoring.METRICS_NAMESPACE
    assert [m["MetricName"] for m in publish["Parameters"]["MetricData"]] == [
        "TrainingSeconds",
        "BillableTrainingSeconds",
        "TrainLoss",
    ]
    # A failure to publish never fails the run: it goes on to the deployment.
    assert publish["Catch"][0]["Next"] == publish["Next"] == "DeployModel"
    statements = find.statements_of_role(resources, find.role_of(resources, machine))
    assert {
        "Action": "cloudwatch:PutMetricData",
        "Effect": "Allow",
        "Resource": "*",
        "Condition": {"StringEquals": {"cloudwatch:namespace": "DreamBoothPipeline"}},
    } in statements


def train_state(stack) -> tuple[dict, dict]:
    resources = Template.from_stack(stack).to_json()["Resources"]
    states = find.states(resources[find.training_machine(resources)])
    return states["TrainModel"], states


def test_on_demand_when_spot_is_switched_off():
    train, states = train_state(synth_stack({"spotTraining": False}))
    assert "EnableManagedSpotTraining" not in train["Parameters"]
    assert train["Parameters"]["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}
    assert "WasSpotCapacityMissing" not in states and "TrainModelOnDemand" not in states


def test_spot_by_default_sets_the_wait_limit_and_trains_on_demand_after_a_spot_stop():
    train, states = train_state(synth_stack({"trainingMaxRuntimeMinutes": 60}))
    assert train["Parameters"]["EnableManagedSpotTraining"] is True
    # Default wait: the run time plus 30 minutes for capacity.
    assert train["Parameters"]["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 5400}
    assert train["Catch"][0] == {
        "ErrorEquals": ["States.TaskFailed"],
        "ResultPath": "$.error",
        "Next": "WasSpotCapacityMissing",
    }
    (stopped, refused) = states["WasSpotCapacityMissing"]["Choices"]
    assert {c["StringMatches"] for c in stopped["Or"]} == {
        "*MaxWaitTimeExceeded*",
        '*"SecondaryStatus":"Interrupted"*',
        '*"SecondaryStatus": "Interrupted"*',
    }
    # A spot quota too low: CreateTrainingJob's ResourceLimitExceeded names the quota in its message
    # (the Cause), whatever the error's name and wrapper (tests/pipeline/test_spot_and_metrics_runs.py).
    assert refused == {
        "Variable": "$.error.Cause",
        "StringMatches": "*ml.g4dn.2xlarge for spot training job usage*",
        "Next": "SpotQuotaRefused",
    }
    assert states[stopped["Next"]]["Next"] == states[refused["Next"]]["Next"] == "RecordOnDemandRetry"
    retry = states["TrainModelOnDemand"]["Parameters"]
    assert "EnableManagedSpotTraining" not in retry and retry["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert retry["TrainingJobName.$"] == "States.Format('{}-od', $.snapshot.trainingJobName)"
    assert states["TrainModelOnDemand"]["Next"] == train["Next"] == "PackageModel"


def test_log_retention_comes_from_the_configuration():
    resources = Template.from_stack(synth_stack({"logRetentionDays": 90})).to_json()["Resources"]
    retentions = {
        v["Properties"].get("RetentionInDays") for v in resources.values() if v["Type"] == "AWS::Logs::LogGroup"
    }
    assert retentions == {90}
