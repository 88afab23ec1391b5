"""The synthesized pipeline, run on moto's Step Functions interpreter (emulator/).

Each test uploads files as a user would, lets EventBridge's event reach the listener, and waits
for the state machines to finish; SageMaker's behaviour (durations, failures, UpdateEndpoint)
comes from the harness's simulator. Quiet window 2 s, endpoint polling every 1 s.
"""

from __future__ import annotations

import json
from itertools import chain

import pytest

from emulator import PipelineHarness, SageMakerSimulator, synthesize
from tests import template_find as find
from tests.pipeline.conftest import jpeg_bytes, png_bytes
from tests.pipeline.conftest import pipeline_harness as harness

DOG_PHOTOS = {f"dog{i}.jpg": jpeg_bytes(512 + i, 512) for i in range(3)}
CAT_PHOTOS = {f"cat{i}.png": png_bytes(600, 600 + i) for i in range(3)}


@pytest.fixture(scope="module")
def synthesized():
    return synthesize({"quietWindowSeconds": 2, "endpointPollSeconds": 1, "endpointMaxWaitMinutes": 5})


def test_first_model_creates_the_endpoint_and_goes_live(synthesized):
    with harness(synthesized) as h:
        model_id = h.train_and_deploy(
            "doppler",
            {
                **DOG_PHOTOS,
                "dataset_info.json": json.dumps(
                    {"instance_prompt": "a photo of Doppler dog", "max_steps": 250}
                ).encode(),
            },
        )

        (train,) = h.training_runs()
        (deploy,) = h.deploy_runs()
        assert (train.status, deploy.status) == ("SUCCEEDED", "SUCCEEDED")
        assert h.simulator.count("create_endpoint") == 1 and h.simulator.count("update_endpoint") == 0

        model = h.models()[model_id]
        assert model_id.startswith("doppler-") and len(model_id) == len("doppler-") + 14
        assert model["status"] == "live"
        assert model["instancePrompt"] == "a photo of Doppler dog"
        assert model["hyperparameters"]["max_steps"] == "250"
        assert float(model["trainLoss"]) == pytest.approx(0.0421)
        assert (
            model["artifactUri"]
            == (  # uncompressed training output, with code/ added
                f"s3://{h.bucket}/models/doppler/{model_id[-14:]}/{model_id}/output/model/"
            )
        )
        assert model["sagemakerModelName"] == model["endpointConfigName"] == model_id
        assert h.live_pointer()["liveModelId"] == model_id
        assert h.live_pointer()["endpointName"] == h.endpoint_name

        job = h.client("sagemaker").describe_training_job(TrainingJobName=model_id)
        assert job["HyperParameters"]["sagemaker_program"] == "transfer_learning.py"
        assert job["HyperParameters"]["sagemaker_submit_directory"].startswith("s3://jumpstart-cache-prod-")
        assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 120 * 60
        assert job["ResourceConfig"]["InstanceType"] == "ml.g4dn.2xlarge"
        channel = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
        staged = channel["training"]
        # The job reads a staged copy of exactly the judged snapshot, prompts included.
        listing = h.client("s3").list_objects_v2(Bucket=h.bucket, Prefix=staged.split(h.bucket + "/")[1])
        staged_names = sorted(o["Key"].rsplit("/", 1)[1] for o in listing["Contents"])
        assert staged_names == sorted([*DOG_PHOTOS, "dataset_info.json"])
        info = h.client("s3").get_object(Bucket=h.bucket, Key=staged.split(h.bucket + "/")[1] + "dataset_info.json")
        assert json.loads(info["Body"].read()) == {"instance_prompt": "a photo of Doppler dog"}

        (note,) = h.notifications()
        assert note["subject"] == "DreamBooth: new model is live"
        assert '"a photo of Doppler dog"' in note["message"] and model_id in note["message"]


def test_second_model_updates_the_endpoint_without_a_gap_in_service(synthesized):
    with harness(synthesized, endpoint_s=2.5) as h:
        first = h.train_and_deploy("doppler", DOG_PHOTOS)
        # Given a live model, when the same dataset gets one more photo later...
        second = h.train_and_deploy("doppler", {"dog9.jpg": jpeg_bytes(700, 700)})

        # ...a new version is trained and put on the same endpoint by UpdateEndpoint.
        assert first != second
        assert h.simulator.count("create_endpoint") == 1 and h.simulator.count("update_endpoint") == 1
        models = h.models()
        assert (models[first]["status"], models[second]["status"]) == ("retired", "live")
        assert h.live_pointer()["liveModelId"] == second
        # Every look at the endpoint after the first creation saw a model serving: the old one
        # until the new one was InService.
        history = h.simulator.serving_history(h.endpoint_name)
        served = history[history.index(first) :]
        assert None not in served
        assert served[0] == first and served[-1] == second
        assert served.count(first) >= 2  # polled during the update, old model still serving
        assert "endpoint-deleted" not in [event for _, event, _ in h.simulator.timeline]


def test_invalid_dataset_creates_no_training_job(synthesized):
    with harness(synthesized) as h:
        h.upload_dataset(
            "doppler", {"dog0.jpg": jpeg_bytes(), "notes.jpg": b"not an image", ".DS_Store": b"\0\0\0\1Bud1"}
        )
        h.wait_until_idle(60)

        (run,) = h.training_runs()
        assert run.status == "FAILED" and run.error == "DatasetRejected"
        assert h.simulator.count("create_training_job") == 0
        assert h.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
        assert h.deploy_runs() == []
        (model,) = h.models().values()
        assert model["status"] == "failed"
        assert "notes.jpg: not a PNG or JPEG image" in model["failureReason"]
        assert "1 usable images; at least 3 are needed" in model["failureReason"]
        (note,) = h.notifications()
        assert note["subject"] == "DreamBooth: dataset rejected, no training started"
        assert "notes.jpg: not a PNG or JPEG image" in note["message"]
        assert "skipped .DS_Store" in note["message"]
        # The user's files are untouched.
        keys = [o["Key"] for o in h.client("s3").list_objects_v2(Bucket=h.bucket)["Contents"]]
        assert sorted(k for k in keys if k.startswith("datasets/")) == [
            "datasets/doppler/.DS_Store",
            "datasets/doppler/dog0.jpg",
            "datasets/doppler/notes.jpg",
        ]
        # Beside them, under models/, only what the pipeline judged: the snapshot and the full report.
        assert sorted(k.rsplit("/", 1)[1] for k in keys if not k.startswith("datasets/")) == [
            "dataset-report.json",
            "snapshot.json",
        ]


def test_training_failure_leaves_the_live_model_untouched(synthesized):
    with harness(synthesized) as h:
        live = h.train_and_deploy("doppler", DOG_PHOTOS)
        h.simulator.fail_training = "AlgorithmError: CUDA out of memory"
        failed = h.train_and_deploy("doppler", {"dog9.jpg": jpeg_bytes(640, 640)})

        assert h.training_runs()[-1].error == "TrainingFailed"
        assert len(h.deploy_runs()) == 1
        models = h.models()
        assert models[live]["status"] == "live" and h.live_pointer()["liveModelId"] == live
        assert models[failed]["status"] == "failed"
        assert "CUDA out of memory" in models[failed]["failureReason"]
        assert "artifactUri" not in models[failed]
        note = h.notifications()[-1]
        assert note["subject"] == "DreamBooth: training failed" and "CUDA out of memory" in note["message"]
        endpoint = h.client("sagemaker").describe_endpoint(EndpointName=h.endpoint_name)
        assert endpoint["EndpointConfigName"] == live


def test_endpoint_update_failure_keeps_the_previous_model_live(synthesized):
    with harness(synthesized, endpoint_s=1.5) as h:
        live = h.train_and_deploy("doppler", DOG_PHOTOS)
        h.simulator.fail_endpoint_update = (
            "The primary container for production variant AllTraffic did not pass the ping health check."
        )
        failed = h.train_and_deploy("doppler", {"dog9.jpg": jpeg_bytes(640, 640)})

        deploy = h.deploy_runs()[-1]
        assert deploy.status == "FAILED" and h.training_runs()[-1].status == "FAILED"
        models = h.models()
        assert models[live]["status"] == "live" and h.live_pointer()["liveModelId"] == live
        assert models[failed]["status"] == "failed"
        assert "did not pass the ping health check" in models[failed]["failureReason"]
        assert f"still serves {live}" in models[failed]["failureReason"]
        assert h.client("sagemaker").describe_endpoint(EndpointName=h.endpoint_name)["EndpointConfigName"] == live
        history = h.simulator.serving_history(h.endpoint_name)
        assert None not in history[history.index(live) :]  # from the first InService on, always served
        note = h.notifications()[-1]
        assert note["subject"] == "DreamBooth: deployment failed" and "still serving" in note["message"]
        lock = h.client("dynamodb").get_item(TableName=h.state_table, Key={"pk": {"S": "deploy-lock"}})["Item"]
        assert "owner" not in lock  # released for the next deployment


def test_a_live_notice_that_cannot_be_sent_leaves_the_new_model_live(synthesized):
    from emulator.iam import statements_matching

    publish = statements_matching("sns:Publish")

    resources = synthesized.template["Resources"]
    deploy_role = find.role_of(resources, find.deploy_machine(resources))

    def deploy_role_cannot_publish(role: str, statement: dict) -> bool:
        return role == deploy_role and publish(role, statement)

    # Given a deployment whose "new model is live" notice SNS refuses (after `__live__` moved)...
    with PipelineHarness(
        synthesized=synthesized, simulator=SageMakerSimulator(), remove_grants=deploy_role_cannot_publish
    ) as h:
        h.iam.expect_denials("sns:Publish")
        model_id = h.train_and_deploy("doppler", DOG_PHOTOS)

        # ...the deployment still succeeded: the model that serves is recorded live, not failed.
        (deploy,) = h.deploy_runs()
        assert deploy.status == "SUCCEEDED", (deploy.error, deploy.cause)
        assert "NotifyLive" in deploy.entered_states and "MarkFailed" not in deploy.entered_states
        assert h.models()[model_id]["status"] == "live" and h.live_pointer()["liveModelId"] == model_id
        assert [d for d in h.iam.denials if "sns:Publish" in str(d)], "the notice was not refused: no test"
        lock = h.client("dynamodb").get_item(TableName=h.state_table, Key={"pk": {"S": "deploy-lock"}})["Item"]
        assert "owner" not in lock


def test_ten_duplicate_events_start_one_training(synthesized):
    with harness(synthesized) as h:
        events = [h.put(f"datasets/doppler/{name}", body) for name, body in DOG_PHOTOS.items()]
        # Given each upload's event delivered ten times, in shuffled order...
        for event in chain.from_iterable([events[::-1], events] * 5):
            h.deliver(event)
        h.wait_until_idle(60)
        # ...and all of them retried once more after the training finished:
        for event in events * 10:
            h.deliver(event)
        h.wait_until_idle(60)

        assert h.simulator.count("create_training_job") == 1
        assert len(h.models()) == 1 and len(h.deploy_runs()) == 1
        runs = h.training_runs()
        assert runs[0].status == "SUCCEEDED" and "TrainModel" in runs[0].entered_states
        for late in runs[1:]:  # the late retries opened a new window, found the same snapshot
            assert late.status == "SUCCEEDED" and late.entered_states[-1] == "SnapshotAlreadyTrained"
        assert len(runs) <= 2


def test_two_datasets_uploaded_at_once_are_both_trained_and_deployed_one_after_the_other(synthesized):
    with harness(synthesized, endpoint_s=1.5) as h:
        for (dog, dog_body), (cat, cat_body) in zip(DOG_PHOTOS.items(), CAT_PHOTOS.items()):
            h.upload(f"datasets/doppler/{dog}", dog_body)
            h.upload(f"datasets/whiskers/{cat}", cat_body)
        h.wait_until_idle(90)

        assert h.simulator.count("create_training_job") == 2
        models = h.models()
        assert sorted(m["dataset"] for m in models.values()) == ["doppler", "whiskers"]
        assert sorted(m["status"] for m in models.values()) == ["live", "retired"]
        assert all(run.status == "SUCCEEDED" for run in h.deploy_runs())
        # Serialized: the second endpoint operation started only after the first one finished.
        ops = [
            (t, event)
            for t, event, _ in h.simulator.timeline
            if event in ("endpoint-creating", "endpoint-updating", "endpoint-in-service", "endpoint-updated")
        ]
        assert [event for _, event in ops] == [
            "endpoint-creating",
            "endpoint-in-service",
            "endpoint-updating",
            "endpoint-updated",
        ]
        assert h.live_pointer()["liveModelId"] == next(k for k, m in models.items() if m["status"] == "live")


def test_a_folder_name_that_cannot_be_a_dataset_is_reported_once(synthesized):
    with harness(synthesized) as h:
        for name, body in DOG_PHOTOS.items():
            h.upload(f"datasets/my dog/{name}", body)
        h.upload("datasets/_pipeline/doppler/1/dog0.jpg", jpeg_bytes())  # the pipeline's own staging
        h.upload("elsewhere/dog0.jpg", jpeg_bytes())  # not under datasets/: the rule does not match

        assert h.training_runs() == []
        (note,) = h.notifications()
        assert note["subject"] == "DreamBooth: dataset folder name not accepted"
        assert "'my dog' is not allowed" in note["message"]


def test_an_upload_while_the_quiet_window_is_awaited_extends_it_and_one_training_has_every_file(synthesized):
    with harness(synthesized) as h:
        (*burst, (late_name, late_body)) = DOG_PHOTOS.items()
        # Given a burst of uploads, and one more file arriving just after the execution read when the
        # window goes quiet (as it starts waiting for that moment: the upload pushes it later)...
        h.when_entering("WaitForQuietWindow", lambda: h.upload(f"datasets/doppler/{late_name}", late_body))
        for name, body in burst:
            h.upload(f"datasets/doppler/{name}", body)
        h.wait_until_idle(60)

        # ...one execution found the window moved, waited again, and trained on every file.
        (run,) = h.training_runs()
        assert run.status == "SUCCEEDED" and "WindowWasExtended" in run.entered_states
        assert run.entered_states.count("WaitForQuietWindow") == 2
        assert h.simulator.count("create_training_job") == 1
        (model,) = h.models().values()
        assert int(model["imageCount"]) == len(DOG_PHOTOS)


def test_deploy_state_machine_puts_a_retired_model_back_live(synthesized):
    """The API's rollback: start the deploy state machine with {"modelId": ...} of an older model."""
    with harness(synthesized) as h:
        first = h.train_and_deploy("doppler", DOG_PHOTOS)
        second = h.train_and_deploy("doppler", {"dog9.jpg": jpeg_bytes(700, 700)})
        creates_before = h.simulator.count("create_training_job")

        h.client("stepfunctions").start_execution(
            stateMachineArn=h.deploy_machine_arn, input=json.dumps({"modelId": first})
        )
        h.wait_until_idle(60)

        models = h.models()
        assert (models[first]["status"], models[second]["status"]) == ("live", "retired")
        assert h.live_pointer()["liveModelId"] == first
        assert h.client("sagemaker").describe_endpoint(EndpointName=h.endpoint_name)["EndpointConfigName"] == first
        assert h.simulator.count("create_training_job") == creates_before  # no training involved
        assert "CreateModel" not in h.deploy_runs()[-1].entered_states  # its SageMaker model is reused


def test_unknown_model_id_is_refused_by_the_deploy_state_machine(synthesized):
    with harness(synthesized) as h:
        h.client("stepfunctions").start_execution(
            stateMachineArn=h.deploy_machine_arn, input=json.dumps({"modelId": "nope-20260101000000"})
        )
        h.wait_until_idle(30)
        (run,) = h.deploy_runs()
        assert run.status == "FAILED" and "UnknownModel" in run.entered_states
        assert "No trained model nope-20260101000000 in the registry" in h.notifications()[-1]["message"]
        assert h.simulator.count("create_endpoint") == 0
        assert h.registry() == {}  # nothing recorded for an id that was never trained


def test_a_lock_left_by_a_dead_deployment_is_taken_over(synthesized):
    with harness(synthesized) as h:
        # Given a lock held by a deploy execution that no longer runs (stopped by an operator)...
        sfn = h.client("stepfunctions")
        dead = sfn.start_execution(
            stateMachineArn=h.deploy_machine_arn, name="dead", input=json.dumps({"modelId": "ghost"})
        )["executionArn"]
        h.wait_until_idle(30)
        h.client("dynamodb").put_item(
            TableName=h.state_table, Item={"pk": {"S": "deploy-lock"}, "owner": {"S": dead}, "modelId": {"S": "ghost"}}
        )

        # ...the next deployment does not wait forever.
        model_id = h.train_and_deploy("doppler", DOG_PHOTOS)

        run = h.deploy_runs()[-1]
        assert run.status == "SUCCEEDED" and "TakeOverLock" in run.entered_states
        assert h.models()[model_id]["status"] == "live"


def test_failed_endpoint_creation_is_reported_and_the_next_deployment_recovers(synthesized):
    with harness(synthesized, endpoint_s=1, fail_endpoint_create="CapacityError: insufficient ml.g4dn.2xlarge") as h:
        failed = h.train_and_deploy("doppler", DOG_PHOTOS)
        assert h.models()[failed]["status"] == "failed"
        assert "insufficient ml.g4dn.2xlarge" in h.models()[failed]["failureReason"]
        assert h.live_pointer() is None
        assert "deployment failed" in h.notifications()[-1]["subject"]

        # When capacity is back, the next model replaces the failed endpoint.
        h.simulator.fail_endpoint_create = None
        recovered = h.train_and_deploy("doppler", {"dog9.jpg": jpeg_bytes(640, 640)})
        assert h.models()[recovered]["status"] == "live"
        assert h.simulator.count("delete_endpoint") == 1 and h.simulator.count("create_endpoint") == 2


def test_the_endpoint_event_wakes_the_deployment_and_polling_covers_a_lost_event(synthesized):
    import time

    # Given a long poll interval, the deployment still goes live right after the endpoint does,
    # woken by SageMaker's state-change event...
    slow_poll = synthesize({"quietWindowSeconds": 1, "endpointPollSeconds": 30})
    with PipelineHarness(synthesized=slow_poll, simulator=SageMakerSimulator(endpoint_s=2)) as h:
        started = time.monotonic()
        h.train_and_deploy("doppler", DOG_PHOTOS)
        assert time.monotonic() - started < 20
        assert h.deploy_runs()[-1].entered_states.count("CheckEndpoint") == 1
    # ...and when the event is lost, the bounded poll (every 1 s here) finds the endpoint ready.
    with PipelineHarness(
        synthesized=synthesized, simulator=SageMakerSimulator(endpoint_s=2), deliver_endpoint_events=False
    ) as h:
        model_id = h.train_and_deploy("doppler", DOG_PHOTOS)
        assert h.models()[model_id]["status"] == "live"
        assert h.deploy_runs()[-1].entered_states.count("CheckEndpoint") >= 2


def test_a_stopped_upload_window_does_not_block_the_dataset(synthesized):
    import time

    with harness(synthesized) as h:
        # Given the dataset's waiting execution stopped by an operator before its window closed (the
        # clock held meanwhile: it would otherwise skip the quiet window as soon as the execution
        # waits in it while this thread waits for the upload's Lambda, before the stop comes)...
        operator_at_work = [True]
        h.clock.hold(lambda: operator_at_work[0])
        try:
            h.upload("datasets/doppler/dog0.jpg", DOG_PHOTOS["dog0.jpg"])
            (waiting,) = h.executions(h.training_machine_arn)
            sfn = h.client("stepfunctions")

            def history() -> list[str]:
                return [e["type"] for e in sfn.get_execution_history(executionArn=waiting["executionArn"])["events"]]

            deadline = time.monotonic() + 60  # moto cannot stop an execution before its first state has begun
            while "WaitStateEntered" not in history():
                assert time.monotonic() < deadline, "the execution never reached its quiet window"
                time.sleep(0.1)
            sfn.stop_execution(executionArn=waiting["executionArn"])
        finally:
            operator_at_work[0] = False
        # (the window is 2 s of real time here: a stop that came after it would not test what this test says)
        assert "WaitStateExited" not in history(), "the stop came after the quiet window had ended"
        # ...the next upload opens a new window instead of finding the old one still "active".
        answer = h.upload("datasets/doppler/dog1.jpg", DOG_PHOTOS["dog1.jpg"])
        assert answer["action"] == "restarted"
        h.upload("datasets/doppler/dog2.jpg", DOG_PHOTOS["dog2.jpg"])
        h.wait_until_idle(60)

        assert [run.status for run in h.training_runs()] == ["ABORTED", "SUCCEEDED"]
        (model,) = h.models().values()
        assert model["status"] == "live" and int(model["imageCount"]) == 3
