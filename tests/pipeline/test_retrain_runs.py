"""Retrain without re-uploading (issue 10, item 6), on the synthesized stack (emulator/): a
training that failed for a transient reason runs again on the same staged snapshot through the
API's POST /models/{id}/retrain; one request starts one retrain; failures that a retry would not
fix, and invalid datasets, are refused; notifications never carry SageMaker's JSON."""

from __future__ import annotations

from emulator import synthesize
from emulator.pipeline_harness import FAST_CONTEXT
from tests.pipeline.conftest import jpeg_bytes
from tests.pipeline.conftest import pipeline_harness as harness

DOG_PHOTOS = {f"dog{i}.jpg": jpeg_bytes(512 + i, 512) for i in range(3)}
CAPACITY = (
    "CapacityError: Unable to provision requested ML compute capacity. Please retry using a different ML instance type."
)


def test_a_capacity_failure_is_retrained_on_the_same_snapshot_with_one_request(synthesized):
    with harness(synthesized, fail_training=CAPACITY) as h:
        # Given a training that failed for want of capacity
        model_id = h.train_and_deploy("dog", DOG_PHOTOS)
        model = h.models()[model_id]
        assert model["status"] == "failed" and model["retryable"] is True
        assert model["failureReason"] == f"training failed: {CAPACITY.rstrip('.')}"
        (note,) = h.notifications()
        assert note["subject"] == "DreamBooth: training failed"
        assert f"dreambooth retrain {model_id}" in note["message"] and "{" not in note["message"]
        assert h.api("GET", f"/models/{model_id}").json()["retryable"] is True
        uploads = [a for a in h.activity if a[1] == "s3"]

        # When capacity is back and the user asks twice (a double click)
        h.simulator.fail_training = None
        first = h.api("POST", f"/models/{model_id}/retrain")
        second = h.api("POST", f"/models/{model_id}/retrain")
        assert first.status == 202, first.text
        assert first.json()["training_job_name"] == f"{model_id}-r1"
        assert second.status == 409 and "already being retrained" in second.json()["error"]["message"]
        h.wait_until_idle(60)

        # Then one more job ran, on the staged copy, and the same model id went live
        assert h.simulator.count("create_training_job") == 2
        job = h.client("sagemaker").describe_training_job(TrainingJobName=f"{model_id}-r1")
        (channel,) = [c for c in job["InputDataConfig"] if c["ChannelName"] == "training"]
        first_job = h.client("sagemaker").describe_training_job(TrainingJobName=model_id)
        (first_channel,) = [c for c in first_job["InputDataConfig"] if c["ChannelName"] == "training"]
        assert channel == first_channel
        assert job["HyperParameters"] == first_job["HyperParameters"]
        model = h.models()[model_id]
        assert model["status"] == "live" and model["trainingJobName"] == f"{model_id}-r1"
        assert h.live_pointer()["liveModelId"] == model_id
        assert [a for a in h.activity if a[1] == "s3"] == uploads  # nothing uploaded again
        assert len(h.models()) == 1
        # And a live model is not retrained
        assert h.api("POST", f"/models/{model_id}/retrain").status == 409


def test_a_failure_a_retry_would_not_fix_is_not_retrained(synthesized):
    with harness(synthesized, fail_training="AlgorithmError: CUDA out of memory") as h:
        model_id = h.train_and_deploy("dog", DOG_PHOTOS)
        model = h.models()[model_id]
        assert model["retryable"] is False
        note = h.notifications()[-1]
        assert "would fail the same way" in note["message"] and "dreambooth retrain" not in note["message"]
        answer = h.api("POST", f"/models/{model_id}/retrain")
        assert answer.status == 409 and "a retry would not fix" in answer.json()["error"]["message"]
        assert h.simulator.count("create_training_job") == 1


def test_an_invalid_dataset_is_retried_only_after_it_changes(synthesized):
    with harness(synthesized) as h:
        model_id = h.train_and_deploy("dog", {"dog0.jpg": DOG_PHOTOS["dog0.jpg"]})
        answer = h.api("POST", f"/models/{model_id}/retrain")
        assert answer.status == 409
        assert "retried only after it changes" in answer.json()["error"]["message"]
        assert h.api("POST", "/models/nope-20260101000000/retrain").status == 404
        assert h.simulator.count("create_training_job") == 0


def test_an_on_demand_retry_that_fails_for_capacity_after_a_spot_stop_is_retryable(synthesized):
    # A spot stop is not a failure any more (the same snapshot is trained on demand at once, see
    # tests/pipeline/test_spot_and_metrics_runs.py); when that on-demand job fails for capacity too,
    # the model is failed, retryable, and the notification says how to retrain.
    spot = synthesize({**FAST_CONTEXT, "spotTraining": True})
    with harness(spot, stop_training="MaxWaitTimeExceeded", fail_training=CAPACITY) as h:
        model_id = h.train_and_deploy("dog", DOG_PHOTOS)
        model = h.models()[model_id]
        assert model["status"] == "failed" and model["retryable"] is True, model
        assert model["trainingJobName"] == f"{model_id}-od"
        subjects = [n["subject"] for n in h.notifications()]
        assert subjects[-2:] == ["DreamBooth: training again on demand", "DreamBooth: training failed"]
        note = h.notifications()[-1]
        assert "capacity" in note["message"] and f"dreambooth retrain {model_id}" in note["message"]
        assert "{" not in note["message"]
