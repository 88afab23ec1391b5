"""The harness's patches hold wherever moto looks the patched names up (emulator/moto_patches.py)."""

from __future__ import annotations

import json
import time
from unittest import mock

import boto3
from moto import mock_aws

from emulator import PipelineHarness
from emulator.pipeline_harness import FAST_CONTEXT


def test_the_sagemaker_sync_service_is_the_harness_s_wherever_moto_looks_it_up():
    # moto's state_task_factory binds state_task_service_for at its import: a process that imported
    # it before any harness (an xdist worker that ran a plain-moto test first) kept moto's own
    # SageMaker service, and every pipeline run then ended in States.Runtime at createTrainingJob.sync.
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_factory as factory,
    )

    with PipelineHarness(context=FAST_CONTEXT):
        for lookup in (factory.state_task_service_for, state_task_factory.state_task_service_for):
            assert type(lookup("sagemaker")).__name__ == "SageMakerSyncService"


def test_moto_answers_the_same_with_its_response_names_looked_up_once():
    # patch_response_keys (entered for the whole test session) against moto's own lookup, on the
    # same backend state: objects and dicts, nested structures, lists, maps, timestamps, errors.
    from moto.core.serialize import XFormedAttributePicker as Picker

    remembered = Picker.get_possible_keys, Picker.__call__
    assert getattr(remembered[0], "remembers", False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn, ddb, s3 = (boto3.client(s, region_name="us-east-1") for s in ("stepfunctions", "dynamodb", "s3"))
        iam, sm = boto3.client("iam"), boto3.client("sagemaker", region_name="us-east-1")
        sns = boto3.client("sns", region_name="us-east-1")  # its responses have transformers: moto's own path
        topic = sns.create_topic(Name="t", Attributes={"DisplayName": "d"})["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:123456789012:q")
        machine = sfn.create_state_machine(
            name="m",
            roleArn="arn:aws:iam::123456789012:role/r",
            definition=json.dumps(
                {
                    "StartAt": "P",
                    "States": {
                        "P": {"Type": "Pass", "Result": {"a": [1, {"b": None}]}, "Next": "F"},
                        "F": {"Type": "Fail", "Error": "E", "Cause": "why"},
                    },
                }
            ),
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=machine, name="x", input="{}")["executionArn"]
        while sfn.describe_execution(executionArn=execution)["status"] == "RUNNING":
            time.sleep(0.05)
        ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName="t", Item={"pk": {"S": "k"}, "m": {"M": {"n": {"N": "1"}, "l": {"L": [{"S": "v"}]}}}})
        s3.create_bucket(Bucket="answers")
        s3.put_object(Bucket="answers", Key="k", Body=b"x", Metadata={"m": "v"})
        iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}", Tags=[{"Key": "k", "Value": "v"}])
        sm.create_model(
            ModelName="mo",
            ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
            PrimaryContainer={"Image": "i", "Environment": {"A": "1"}},
        )
        reads = [
            lambda: sfn.get_execution_history(executionArn=execution),
            lambda: sfn.describe_execution(executionArn=execution),
            lambda: sfn.list_executions(stateMachineArn=machine),
            lambda: sfn.describe_state_machine(stateMachineArn=machine),
            lambda: ddb.describe_table(TableName="t"),
            lambda: ddb.scan(TableName="t"),
            lambda: s3.list_objects_v2(Bucket="answers"),
            lambda: s3.head_object(Bucket="answers", Key="k"),
            lambda: iam.get_role(RoleName="r"),
            lambda: sm.describe_model(ModelName="mo"),
            lambda: sm.list_models(),
            lambda: sns.list_topics(),
            lambda: sns.get_topic_attributes(TopicArn=topic),
            lambda: sns.list_subscriptions_by_topic(TopicArn=topic),
        ]

        def answers() -> list:
            out = []
            for read in reads:
                answer = read()
                answer.pop("ResponseMetadata")
                out.append(answer)
            try:
                sm.describe_model(ModelName="absent")
            except sm.exceptions.ClientError as error:
                out.append(error.response["Error"])
            return out

        with_names_remembered = answers()
        with (
            mock.patch.object(Picker, "get_possible_keys", remembered[0].moto_s),
            mock.patch.object(Picker, "__call__", remembered[1].moto_s),
        ):
            as_moto_answers = answers()
    assert with_names_remembered == as_moto_answers
    assert len(with_names_remembered[0]["events"]) == 5 and with_names_remembered[9]["PrimaryContainer"]["Environment"]
