"""training_failure.explain: one line without SageMaker's JSON, and whether a retrain can help."""

from __future__ import annotations

import json

import pytest

import training_failure

JOB = {
    "TrainingJobName": "dog-20261201100000",
    "TrainingJobStatus": "Failed",
    "SecondaryStatus": "Failed",
    "FailureReason": "CapacityError: Unable to provision requested ML compute capacity.",
    "ResourceConfig": {"InstanceType": "ml.g4dn.2xlarge"},
    "HyperParameters": {"max_steps": "400"},
}


def state(cause, stage="training", error="States.TaskFailed", **failure):
    return {
        "dataset": "dog",
        "snapshot": {"modelId": "dog-20261201100000"},
        "error": {"Error": error, "Cause": cause},
        "failure": {"stage": stage, **failure},
    }


def test_the_json_cause_of_a_sync_task_becomes_sagemakers_reason_alone():
    result = training_failure.explain(state(json.dumps(JOB)))
    assert result["reason"] == "training failed: CapacityError: Unable to provision requested ML compute capacity"
    assert result["retryable"] is True
    assert "{" not in result["message"] and "HyperParameters" not in result["message"]
    assert result["message"].endswith("(or POST /models/dog-20261201100000/retrain, or Retry on the web page).")
    assert "dreambooth retrain dog-20261201100000" in result["message"]


@pytest.mark.parametrize(
    "reason, retryable",
    [
        ("AlgorithmError: CUDA out of memory", False),
        ("InternalServerError: We encountered an internal error. Please try again.", True),
        ("ClientError: Please ensure the S3 prefix exists", False),
    ],
)
def test_only_transient_reasons_are_retryable(reason, retryable):
    assert training_failure.explain(state(json.dumps({**JOB, "FailureReason": reason})))["retryable"] is retryable


def test_a_quota_failure_is_retryable_after_raising_the_quota():
    cause = (
        "The account-level service limit 'ml.g4dn.2xlarge for training job usage' is 0 Instances "
        "(Service: AmazonSageMaker; Status Code: 400; Error Code: ResourceLimitExceeded; Request ID: x)"
    )
    result = training_failure.explain(state(cause, error="SageMaker.ResourceLimitExceededException"))
    assert result["retryable"] is True and "Raise the SageMaker quota" in result["message"]
    assert result["reason"].startswith("training failed: SageMaker.ResourceLimitExceededException: The account")


def test_a_quota_failure_is_known_by_the_quota_named_in_sagemakers_message_alone():
    # Planted defect caught: a quota known only by the word ResourceLimitExceeded (in the error's
    # name or the SDK's wrapper): SageMaker's bare message under the generic error name is then a
    # failure "that would fail the same way", with no hint to raise the quota.
    cause = "The account-level service limit 'ml.g4dn.2xlarge for training job usage' is 0 Instances"
    result = training_failure.explain(state(cause, error="SageMaker.AmazonSageMakerException"))
    assert result["retryable"] is True
    assert "Raise the SageMaker quota 'ml.g4dn.2xlarge for training job usage' first" in result["message"]


def test_a_plain_spot_reason_is_kept_and_retryable():
    cause = json.dumps(
        {**JOB, "TrainingJobStatus": "Stopped", "SecondaryStatus": "MaxWaitTimeExceeded", "FailureReason": None}
    )
    result = training_failure.explain(state(cause, plain=True, reason="no spot capacity: SageMaker stopped it"))
    assert result["reason"] == "no spot capacity: SageMaker stopped it" and result["retryable"] is True


def test_transient_errors_before_the_snapshot_was_staged_are_not_retryable():
    result = training_failure.explain(
        state("Lambda.ServiceException: busy", stage="validating the dataset", error="Lambda.ServiceException")
    )
    assert result["retryable"] is False and "upload to datasets/dog/ again" in result["message"]


@pytest.mark.parametrize(
    "odd",
    [
        {},
        {"error": "x", "failure": 3},
        {"error": {"Cause": {"a": 1}}},
        {"error": {"Cause": "\ud83d" * 2000}, "snapshot": {"modelId": "m"}},
    ],
)
def test_odd_states_never_raise_and_stay_one_short_valid_line(odd):
    result = training_failure.explain(odd)
    assert len(result["reason"]) <= training_failure.MAX_REASON_CHARS and "\n" not in result["message"]
    result["message"].encode("utf-8")
