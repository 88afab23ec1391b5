"""Managed spot training and the training metrics, on the synthesized pipeline (emulator/).

The stack is synthesized with `spotTraining=true`; SageMaker's behaviour comes from the harness's
simulator: a completed job, a job SageMaker stops because spot capacity never came
(SecondaryStatus MaxWaitTimeExceeded), one stopped after interruptions, and an ordinary failure.
"""

from __future__ import annotations

from unittest import mock

import pytest

from emulator import PipelineHarness, SageMakerSimulator, synthesize
from tests.pipeline.conftest import jpeg_bytes

PHOTOS = {f"dog{i}.jpg": jpeg_bytes(512 + i, 512) for i in range(3)}
MAX_WAIT_MINUTES = 300


@pytest.fixture(scope="module")
def synthesized():
    return synthesize(
        {
            "quietWindowSeconds": 2,
            "endpointPollSeconds": 1,
            "endpointMaxWaitMinutes": 5,
            "spotTraining": "true",
            "spotMaxWaitMinutes": MAX_WAIT_MINUTES,
        }
    )


def run(h: PipelineHarness, files: dict[str, bytes]) -> str:
    before = set(h.models())
    h.upload_dataset("doppler", files)
    h.wait_until_idle(60)
    (model_id,) = set(h.models()) - before
    return model_id


def metric_values(h: PipelineHarness, name: str) -> list[float]:
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    answer = h.client("cloudwatch").get_metric_statistics(
        Namespace="DreamBoothPipeline",
        MetricName=name,
        Dimensions=[{"Name": "service", "Value": "dreambooth-pipeline"}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=3600,
        Statistics=["Maximum", "SampleCount"],
    )
    return [p["Maximum"] for p in answer["Datapoints"]]


def test_a_spot_job_asks_for_spot_with_the_wait_limit_and_publishes_its_metrics(synthesized):
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(training_s=1.2)) as h:
        model_id = run(h, PHOTOS)

        job = h.client("sagemaker").describe_training_job(TrainingJobName=model_id)
        assert job["EnableManagedSpotTraining"] is True
        assert job["StoppingCondition"] == {
            "MaxRuntimeInSeconds": 120 * 60,
            "MaxWaitTimeInSeconds": MAX_WAIT_MINUTES * 60,
        }
        assert h.models()[model_id]["status"] == "live"
        # The training state machine published the job's times and loss (aws-sdk PutMetricData).
        assert metric_values(h, "TrainingSeconds") == [1.0]
        assert metric_values(h, "BillableTrainingSeconds") == [1.0]
        assert metric_values(h, "TrainLoss") == [pytest.approx(0.0421)]


@pytest.mark.parametrize("secondary_status", ["MaxWaitTimeExceeded", "Interrupted"])
def test_spot_capacity_that_never_came_is_trained_again_on_demand(synthesized, secondary_status):
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator()) as h:
        live = run(h, PHOTOS)
        # When SageMaker stops the next spot job for want of spot capacity
        h.simulator.stop_training = secondary_status
        retried = run(h, {"dog9.jpg": jpeg_bytes(640, 640)})

        # Then the same snapshot is trained on demand, deployed, and the notification says what happened
        sagemaker = h.client("sagemaker")
        assert sagemaker.describe_training_job(TrainingJobName=retried)["TrainingJobStatus"] == "Stopped"
        on_demand = sagemaker.describe_training_job(TrainingJobName=f"{retried}-od")
        assert on_demand["TrainingJobStatus"] == "Completed" and not on_demand.get("EnableManagedSpotTraining")
        assert "MaxWaitTimeInSeconds" not in on_demand["StoppingCondition"]
        subjects = [n["subject"] for n in h.notifications()]
        assert "DreamBooth: training again on demand" in subjects
        (note,) = [n for n in h.notifications() if n["subject"] == "DreamBooth: training again on demand"]
        assert f"({MAX_WAIT_MINUTES} min)" in note["message"] and f"{retried}-od" in note["message"]
        models = h.models()
        assert models[retried]["status"] == "live" and models[retried]["trainingJobName"] == f"{retried}-od"
        assert models[live]["status"] == "retired" and h.live_pointer()["liveModelId"] == retried
        assert h.training_runs()[-1].status == "SUCCEEDED"


def test_an_ordinary_failure_of_a_spot_job_is_not_blamed_on_spot(synthesized):
    with PipelineHarness(
        synthesized=synthesized, simulator=SageMakerSimulator(fail_training="AlgorithmError: CUDA out of memory")
    ) as h:
        failed = run(h, PHOTOS)

        note = h.notifications()[-1]
        assert note["subject"] == "DreamBooth: training failed"
        assert "CUDA out of memory" in note["message"] and "spot capacity" not in note["message"]
        assert h.models()[failed]["status"] == "failed"
        assert metric_values(h, "TrainingSeconds") == []


SPOT_QUOTA = "ml.g4dn.2xlarge for spot training job usage"
ON_DEMAND_QUOTA = "ml.g4dn.2xlarge for training job usage"


@pytest.fixture(params=["sdk-wrapper", "bare-message"])
def refusal_cause(request):
    """How Step Functions' Cause carries SageMaker's refusal: in the SDK's "(Service: ...; Error Code:
    ResourceLimitExceeded; ...)" wrapper (the harness's default), or as SageMaker's message alone (not
    ruled out: AWS documents the error's name, SageMaker.ResourceLimitExceededException, not its Cause).
    Planted defect caught by the bare form: the spot-quota Choice also requiring the word
    ResourceLimitExceeded in the Cause (only the wrapper has it): the on-demand retry never runs."""
    if request.param == "sdk-wrapper":
        yield
        return
    from emulator import moto_patches

    wrapped = moto_patches.sagemaker_task_error

    def bare(response):
        return wrapped(response)[0], response["Error"]["Message"]

    with mock.patch.object(moto_patches, "sagemaker_task_error", bare):
        yield


def test_a_spot_quota_of_zero_trains_on_demand_and_records_why(synthesized, refusal_cause):
    # Given a new account's spot training quota of 0 (CreateTrainingJob: ResourceLimitExceeded)
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(spot_training_quota=0)) as h:
        model_id = run(h, PHOTOS)

        # Then the same snapshot is trained on demand, deployed, and the registry and notice say why
        sagemaker = h.client("sagemaker")
        assert (
            sagemaker.list_training_jobs(NameContains=model_id)["TrainingJobSummaries"][0]["TrainingJobName"]
            == f"{model_id}-od"
        )  # the spot job was never created
        assert not sagemaker.describe_training_job(TrainingJobName=f"{model_id}-od").get("EnableManagedSpotTraining")
        model = h.models()[model_id]
        assert model["status"] == "live" and model["trainingJobName"] == f"{model_id}-od"
        assert SPOT_QUOTA in model["trainingRetry"] and "ResourceLimitExceeded" in model["trainingRetry"]
        (note,) = [n for n in h.notifications() if n["subject"] == "DreamBooth: training again on demand"]
        assert SPOT_QUOTA in note["message"] and f"{model_id}-od" in note["message"]
        assert "spot capacity" not in note["message"]


def test_both_training_quotas_at_zero_fail_saying_which_quotas_to_raise(synthesized, refusal_cause):
    simulator = SageMakerSimulator(spot_training_quota=0, training_quota=0)
    with PipelineHarness(synthesized=synthesized, simulator=simulator) as h:
        model_id = run(h, PHOTOS)

        model = h.models()[model_id]
        assert model["status"] == "failed" and model["retryable"] is True
        assert SPOT_QUOTA in model["trainingRetry"]
        (note,) = [n for n in h.notifications() if n["subject"] == "DreamBooth: training failed"]
        assert f"Raise the SageMaker quotas '{SPOT_QUOTA}' and '{ON_DEMAND_QUOTA}' first" in note["message"]
        assert f"dreambooth retrain {model_id}" in note["message"]
        assert h.training_runs()[-1].status == "FAILED"
