"""`cdk destroy`: the custom resource deletes the pipeline's run-time SageMaker resources only."""

from __future__ import annotations

import importlib
import json

import boto3
import pytest
from moto import mock_aws

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/hosting"


@pytest.fixture
def aws():
    with mock_aws():
        yield


def make_model(sagemaker, name: str) -> None:
    sagemaker.create_model(
        ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "123.dkr.ecr.us-east-1.amazonaws.com/x:1"}
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.g4dn.2xlarge",
            }
        ],
    )


def world():
    """A registry with two pipeline models, one live; a model that is not the pipeline's; a bucket."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    dynamodb.create_table(
        TableName="registry",
        KeySchema=[{"AttributeName": "modelId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "modelId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for name in ("dog-20261125000000", "dog-20261126000000", "someone-elses-model"):
        make_model(sagemaker, name)
    for name, status in (("dog-20261125000000", "retired"), ("dog-20261126000000", "live")):
        dynamodb.put_item(
            TableName="registry",
            Item={
                "modelId": {"S": name},
                "status": {"S": status},
                "sagemakerModelName": {"S": name},
                "endpointConfigName": {"S": name},
            },
        )
    dynamodb.put_item(TableName="registry", Item={"modelId": {"S": "dog-invalid"}, "status": {"S": "failed"}})
    dynamodb.put_item(
        TableName="registry",
        Item={
            "modelId": {"S": "__live__"},
            "liveModelId": {"S": "dog-20261126000000"},
            "endpointConfigName": {"S": "dog-20261126000000"},
        },
    )
    sagemaker.create_endpoint(EndpointName="Stack-sd", EndpointConfigName="dog-20261126000000")
    s3.create_bucket(Bucket="photos")
    s3.put_object(Bucket="photos", Key="datasets/dog/1.jpg", Body=b"x")
    s3.put_object(Bucket="photos", Key="models/dog/20261126000000/model.tar.gz", Body=b"y")
    return sagemaker, dynamodb, s3


def test_clean_up_deletes_endpoint_configs_and_models_recorded_in_the_registry(aws):
    import sagemaker_cleanup

    sagemaker, dynamodb, s3 = world()
    sfn = boto3.client("stepfunctions", region_name=REGION)

    deleted = sagemaker_cleanup.clean_up(
        sagemaker, sfn, dynamodb, table="registry", endpoint_name="Stack-sd", state_machine_arns=[]
    )

    assert deleted["endpoints"] == ["Stack-sd"]
    assert deleted["endpointConfigs"] == deleted["models"] == ["dog-20261125000000", "dog-20261126000000"]
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == ["someone-elses-model"]
    assert [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]] == [
        "someone-elses-model"
    ]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="photos")["Contents"])
    assert keys == ["datasets/dog/1.jpg", "models/dog/20261126000000/model.tar.gz"]

    # Running it again (a retried delete) finds nothing left and does not fail.
    again = sagemaker_cleanup.clean_up(
        sagemaker, sfn, dynamodb, table="registry", endpoint_name="Stack-sd", state_machine_arns=[]
    )
    assert again == {"stoppedExecutions": [], "endpoints": [], "endpointConfigs": [], "models": []}


def test_clean_up_stops_running_pipeline_executions_first(aws):
    import sagemaker_cleanup

    sagemaker, dynamodb, _ = world()
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name="train",
        roleArn=ROLE,
        definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}}),
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name="dog-1")["executionArn"]

    deleted = sagemaker_cleanup.clean_up(
        sagemaker, sfn, dynamodb, table="registry", endpoint_name="Stack-sd", state_machine_arns=[machine]
    )

    assert deleted["stoppedExecutions"] == [execution]
    assert sfn.describe_execution(executionArn=execution)["status"] == "ABORTED"


class FakeContext:
    log_stream_name = "stream"
    function_name = "cleanup"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cleanup"
    aws_request_id = "req"


def cfn_event(request_type: str) -> dict:
    return {
        "RequestType": request_type,
        "ResponseURL": "https://cloudformation-custom-resource-response.example/abc",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/Stack/1",
        "RequestId": "r1",
        "LogicalResourceId": "Cleanup",
        "PhysicalResourceId": "cleanup-1",
        "ResourceProperties": {"RegistryTableName": "registry", "EndpointName": "Stack-sd", "StateMachineArns": []},
    }


@pytest.fixture
def cleanup_handler(aws, monkeypatch):
    import urllib.request

    sent = []

    class Response:
        status = 200

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_urlopen(request, timeout):
        sent.append((request.get_method(), request.full_url, json.loads(request.data)))
        return Response()

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    import cleanup

    module = importlib.reload(cleanup)
    return module, sent


def test_handler_answers_cloudformation_and_deletes_only_on_delete(cleanup_handler):
    handler, sent = cleanup_handler
    sagemaker, _, _ = world()

    handler.handler(cfn_event("Create"), FakeContext())
    assert sagemaker.list_endpoints()["Endpoints"] != []
    handler.handler(cfn_event("Delete"), FakeContext())
    assert sagemaker.list_endpoints()["Endpoints"] == []

    assert [(method, body["Status"]) for method, _, body in sent] == [("PUT", "SUCCESS"), ("PUT", "SUCCESS")]
    assert sent[1][2]["Data"]["endpoints"] == "Stack-sd"
    assert sent[1][2]["PhysicalResourceId"] == "cleanup-1"


def test_handler_reports_a_failure_instead_of_hanging_the_stack(cleanup_handler):
    handler, sent = cleanup_handler  # no registry table exists: the scan fails

    handler.handler(cfn_event("Delete"), FakeContext())

    ((_, _, body),) = sent
    assert body["Status"] == "FAILED" and "ResourceNotFoundException" in body["Reason"]


def test_clean_up_removes_the_endpoints_autoscaling(aws):
    import sagemaker_cleanup
    from dreambooth_shared.autoscaling import register_scaling

    sagemaker, dynamodb, _ = world()
    sfn = boto3.client("stepfunctions", region_name=REGION)
    autoscaling = boto3.client("application-autoscaling", region_name=REGION)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    register_scaling(autoscaling, cloudwatch, "Stack-sd", max_instances=2, target_backlog=2, idle_minutes=10)
    assert len(cloudwatch.describe_alarms()["MetricAlarms"]) == 2
    deleted = sagemaker_cleanup.clean_up(
        sagemaker,
        sfn,
        dynamodb,
        table="registry",
        endpoint_name="Stack-sd",
        state_machine_arns=[],
        application_autoscaling=autoscaling,
        cloudwatch=cloudwatch,
    )
    assert deleted["scalableTargets"] == ["endpoint/Stack-sd/variant/AllTraffic"]
    assert autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []
