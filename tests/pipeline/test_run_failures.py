"""Executions that end uncaught still leave a failed model and a notification (run_failures.py)."""

from __future__ import annotations

import json

from emulator import PipelineHarness, SageMakerSimulator
from tests.pipeline.conftest import dog_photos

DOG_PHOTOS = dog_photos()


def test_a_terminal_error_after_registration_marks_the_model_failed_and_notifies(synthesized):
    # Given a validation answer without a field the next state reads (a stand-in for any
    # States.Runtime or States.DataLimitExceeded, which no Catch intercepts)...
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(), enforce_limits=False) as h:
        validate = h.function_with_handler("dataset_tasks.validate")
        h._load_handler(validate)
        real = validate.module.validate

        def without_reason(event, context):
            answer = real(event, context)
            answer.pop("reason")
            return answer

        validate.module.validate = without_reason
        two_photos = dict(list(DOG_PHOTOS.items())[:2])  # invalid: MarkInvalid reads $.validation.reason
        model_id = h.train_and_deploy("doppler", two_photos)

        (run,) = h.training_runs()
        assert (run.status, run.error) == ("FAILED", "States.Runtime")
        # ...the registry does not stay at `validating`, and the user is told.
        model = h.models()[model_id]
        assert model["status"] == "failed"
        assert "ended with States.Runtime before it could record why" in model["failureReason"]
        (note,) = h.notifications()
        assert note["subject"] == "DreamBooth: training failed" and model_id in note["message"]
        assert [v.kind for v in h.limits.violations] == ["terminal-error"]


def test_a_training_run_that_dies_before_registering_is_reported(synthesized):
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(), enforce_limits=False) as h:
        # An execution started by hand for a dataset with no upload window: ReadUploadWindow's
        # selector finds no item (States.Runtime) before any model is registered.
        h.client("stepfunctions").start_execution(
            stateMachineArn=h.training_machine_arn,
            name="manual",
            input=json.dumps({"dataset": "ghost", "generation": 1, "extensions": {"count": 0}}),
        )
        h.wait_until_idle(30)

        (run,) = h.training_runs()
        assert run.status == "FAILED" and h.models() == {}
        (note,) = h.notifications()
        assert note["subject"] == "DreamBooth: training failed" and "Dataset ghost" in note["message"]
        assert "No model was registered" in note["message"]


def test_ordinary_failures_are_not_reported_twice(synthesized):
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(fail_training="boom")) as h:
        model_id = h.train_and_deploy("doppler", DOG_PHOTOS)
        assert h.models()[model_id]["status"] == "failed"
        assert "boom" in h.models()[model_id]["failureReason"]
        assert [n["subject"] for n in h.notifications()] == ["DreamBooth: training failed"]
