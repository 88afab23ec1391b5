"""The harness sees what AWS would refuse: a missing grant (IAM on moto) and a parameter outside
botocore's service model. Each run plants one defect and expects the pipeline to fail the way
it would in AWS; without emulator/iam.py and service_model.py these runs would succeed."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from emulator import PipelineHarness, SageMakerSimulator, synthesize
from emulator.iam import Check, evaluate, statements_matching
from emulator.pipeline_harness import FAST_CONTEXT
from emulator.service_model import check_call
from tests.pipeline.conftest import jpeg_bytes

PHOTOS = {f"dog{i}.jpg": jpeg_bytes(512 + i, 512) for i in range(3)}


@pytest.fixture(scope="module")
def synthesized():
    return synthesize(FAST_CONTEXT)


@contextmanager
def _training_without(synthesized, remove, expected_denial: str) -> Iterator[tuple[PipelineHarness, str]]:
    """Upload a dataset with the grants `remove` picks left out; yields the harness and the reason
    the registry gives for the failed training."""
    with PipelineHarness(
        synthesized=synthesized, simulator=SageMakerSimulator(training_s=1), remove_grants=remove
    ) as h:
        h.iam.expect_denials(expected_denial)
        h.upload_dataset("doppler", PHOTOS)
        h.wait_until_idle(90)
        (run,) = h.training_runs()
        assert run.status == "FAILED"
        (model,) = h.models().values()
        assert model["status"] == "failed"
        yield h, model["failureReason"]


def test_without_the_jumpstart_listing_grant_the_training_job_cannot_read_the_base_model(synthesized):
    # Given the training role without its s3:ListBucket on the JumpStart bucket (issue 9, item 2),
    # when a dataset is uploaded, then SageMaker's download of the model channel fails the job.
    remove = statements_matching("s3:ListBucket", resource_contains="jumpstart-cache-prod")
    denial = "s3:ListBucket on arn:aws:s3:::jumpstart-cache-prod-us-east-1"
    with _training_without(synthesized, remove, denial) as (h, reason):
        assert "Data download failed" in reason and "AccessDenied" in reason
        role = _training_role(h)
        assert [str(d) for d in h.iam.denials] == [
            f"AccessDenied: arn:aws:sts::123456789012:assumed-role/{role}/{role} is not authorized to perform {denial}"
        ]
        assert not h.deploy_runs()


def test_without_pass_role_the_state_machine_cannot_start_the_training_job(synthesized):
    remove = statements_matching("iam:PassRole", resource_contains="SageMakerRolesTraining")
    with _training_without(synthesized, remove, "iam:PassRole") as (h, reason):
        assert "iam:PassRole" in reason and "AccessDenied" in reason
        assert h.simulator.count("create_training_job") == 0


def test_without_the_managed_rule_grants_the_training_task_fails_before_any_job(synthesized):
    # Given the training machine's role without events:PutTargets/PutRule/DescribeRule on the managed rule
    # createTrainingJob.sync needs (issue 18, item 6), when a dataset is uploaded
    remove = statements_matching(
        "events:PutRule", resource_contains="StepFunctionsGetEventsForSageMakerTrainingJobsRule"
    )
    with _training_without(synthesized, remove, "events:") as (h, reason):
        # Then the task fails as AWS reports it, and no training job was created
        (run,) = h.training_runs()
        assert "is not authorized to create managed-rule" in json.dumps(run.events, default=str)
        assert h.simulator.count("create_training_job") == 0
        rule = "arn:aws:events:us-east-1:123456789012:rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule"
        assert sorted(d.action for d in h.iam.denials) == ["events:DescribeRule", "events:PutRule", "events:PutTargets"]
        assert {d.resource for d in h.iam.denials} == {rule}
        assert all("TrainingStateMachineRole" in d.principal for d in h.iam.denials)


def test_without_its_grant_on_the_topics_key_sagemaker_cannot_send_the_notice(synthesized):
    # Given the hosting role (SageMaker publishes asynchronous notices with it) without kms:GenerateDataKey /
    # kms:Decrypt on the key of the inference topics (issue 18, item 6)
    hosting_key = statements_matching("kms:GenerateDataKey", "kms:Decrypt", resource_contains="NotificationsKey")
    remove = lambda role, statement: "SageMakerRolesHosting" in role and hosting_key(role, statement)  # noqa: E731
    with PipelineHarness(
        synthesized=synthesized, simulator=SageMakerSimulator(training_s=1, endpoint_s=1), remove_grants=remove
    ) as h:
        h.iam.expect_denials("kms:GenerateDataKey on arn:aws:kms:")
        h.train_and_deploy("doppler", PHOTOS)
        # When a generation runs on the endpoint
        created = h.api("POST", "/generations", {"prompt": "Doppler on the beach", "seed": 7})
        assert created.status == 202, created.text
        h.wait_until_idle(30)
        # Then the answer is written but its notice is refused: nothing reaches the result function
        (request,) = h.simulator.async_requests
        assert request["outcome"] == "lost"
        assert [e for _, e, _ in h.simulator.timeline if e == "async-notice-refused"]
        (denial,) = h.iam.denials
        assert "SageMakerRolesHosting" in denial.principal and denial.action == "kms:GenerateDataKey"
        assert "NotificationsKey" in denial.resource
        assert h.api("GET", f"/generations/{created.json()['id']}").json()["status"] == "queued"


def test_the_template_grants_what_each_flow_needs_and_the_calls_fit_the_service_model(synthesized):
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(training_s=1, endpoint_s=1)) as h:
        model_id = h.train_and_deploy("doppler", PHOTOS)
        assert h.models()[model_id]["status"] == "live"
        # Every request was signed as some role and authorized; none refused, none malformed.
        assert h.iam.checks > 50 and h.iam.denials == []
        assert h.service_model.calls > 50 and h.service_model.violations == []


def test_a_parameter_outside_the_service_model_fails_with_the_field_named(synthesized):
    with PipelineHarness(synthesized=synthesized) as h:
        h.service_model.expect("ModelName")
        with pytest.raises(ClientError) as refused:
            h.client("sagemaker").create_model(
                ModelName="m" * 64,
                ExecutionRoleArn=f"arn:aws:iam::123456789012:role/{_hosting_role(h)}",
                PrimaryContainer={"Image": "x"},
            )
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        assert "CreateModel.ModelName: length 64 is more than the maximum 63" in str(refused.value)


def _training_role(h: PipelineHarness) -> str:
    (logical,) = [r for r in h.iam.roles if "SageMakerRolesTraining" in r]
    return logical


def _hosting_role(h: PipelineHarness) -> str:
    (logical,) = [r for r in h.iam.roles if "SageMakerRolesHosting" in r]
    return logical


# ---- the evaluation itself ----

LIST_ONE_KEY = {
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::b",
            "Condition": {"StringEquals": {"s3:prefix": ["models/base.tar.gz"]}},
        }
    ]
}


def test_a_prefix_condition_allows_listing_that_key_only():
    assert evaluate([LIST_ONE_KEY], Check("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "models/base.tar.gz"}))
    assert not evaluate([LIST_ONE_KEY], Check("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "models/"}))
    assert not evaluate([LIST_ONE_KEY], Check("s3:ListBucket", "arn:aws:s3:::b"))  # no prefix: the whole bucket
    assert not evaluate(
        [LIST_ONE_KEY], Check("s3:ListBucket", "arn:aws:s3:::other", {"s3:prefix": "models/base.tar.gz"})
    )


def test_an_explicit_deny_wins_and_a_negated_condition_denies_a_missing_tag():
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "sagemaker:CreateModel", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": "sagemaker:CreateModel",
                "Resource": "*",
                "Condition": {"StringNotEquals": {"aws:RequestTag/stack": "S"}},
            },
        ]
    }
    assert evaluate([policy], Check("sagemaker:CreateModel", "arn:x", {"aws:RequestTag/stack": "S"}))
    assert not evaluate([policy], Check("sagemaker:CreateModel", "arn:x", {"aws:RequestTag/stack": "T"}))
    assert not evaluate([policy], Check("sagemaker:CreateModel", "arn:x"))


def test_the_service_model_check_names_lengths_patterns_and_enums_botocore_skips():
    operation = boto3.client("sagemaker", region_name="us-east-1").meta.service_model.operation_model(
        "CreateTrainingJob"
    )
    problems = check_call(
        operation,
        {
            "TrainingJobName": "a_b",
            "RoleArn": "arn:aws:iam::123456789012:role/r",
            "AlgorithmSpecification": {"TrainingImage": "i", "TrainingInputMode": "File"},
            "HyperParameters": {"prompt": "x" * 2501},
            "OutputDataConfig": {"S3OutputPath": "s3://b/o"},
            "ResourceConfig": {"InstanceType": "ml.p3.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        },
    )
    joined = json.dumps(problems)
    assert "CreateTrainingJob.TrainingJobName: 'a_b' does not match the pattern" in joined
    assert "CreateTrainingJob.HyperParameters['prompt']: length 2501 is more than the maximum 2500" in joined
    assert "CreateTrainingJob.ResourceConfig.InstanceType: 'ml.p3.xlarge' is not one of" in joined
