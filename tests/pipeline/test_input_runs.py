"""Odd uploads on the synthesized pipeline (emulator/, moto's Step Functions): files the
pipeline skips cost no training, folder placeholders open no run, cut-off photos are refused
before any training job, near-miss names are in the notifications, and event keys work in both
URL-encoded and plain form."""

from __future__ import annotations

from urllib.parse import quote_plus

import pytest

from tests.pipeline.conftest import jpeg_bytes
from tests.pipeline.conftest import pipeline_harness as harness

DOG_PHOTOS = {f"dog{i}.jpg": jpeg_bytes(512 + i, 512) for i in range(3)}


def test_files_the_pipeline_skips_start_no_model_version_and_no_job(synthesized):
    with harness(synthesized) as h:
        # Given a trained dataset
        model_id = h.train_and_deploy("dog", DOG_PHOTOS)
        jobs = h.simulator.count("create_training_job")
        # When files the pipeline never trains on arrive, one by one and later
        for key, body in (
            ("datasets/dog/.DS_Store", b"\0\0\0\1Bud1"),
            ("datasets/dog/notes.txt", b"good boy"),
            ("datasets/dog/raw/dog9.jpg", jpeg_bytes(700, 700)),
            ("datasets/dog/dataset-info.json", b'{"instance_prompt": "x"}'),
        ):
            h.upload(key, body)
            h.wait_until_idle(60)
        # Then no new model version and no training job
        assert list(h.models()) == [model_id]
        assert h.simulator.count("create_training_job") == jobs
        assert {run.status for run in h.training_runs()} == {"SUCCEEDED"}


def test_a_folder_placeholder_alone_opens_no_run(synthesized):
    with harness(synthesized) as h:
        model_id = h.train_and_deploy("dog", DOG_PHOTOS)
        runs = len(h.training_runs())
        for key in ("datasets/dog/raw/", "datasets/newdog/", "datasets/newdog/photos/"):
            answer = h.upload(key, b"")
            assert answer["action"] == "ignored", answer
        h.wait_until_idle(30)
        assert len(h.training_runs()) == runs
        assert list(h.models()) == [model_id]


def test_a_cut_off_photo_is_refused_by_name_before_any_training_job(synthesized):
    with harness(synthesized) as h:
        whole = jpeg_bytes(640, 640)
        h.upload_dataset("dog", {**DOG_PHOTOS, "cut.jpg": whole[: len(whole) * 2 // 3]})
        h.wait_until_idle(60)
        assert h.simulator.count("create_training_job") == 0
        (model,) = h.models().values()
        assert "cut.jpg: damaged JPEG: the file ends without the JPEG end marker FFD9" in model["failureReason"]
        (note,) = h.notifications()
        assert "cut.jpg: damaged JPEG" in note["message"] and "no GPU time was used" in note["message"]


def test_near_miss_names_are_in_the_success_notification(synthesized):
    with harness(synthesized) as h:
        h.train_and_deploy(
            "dog", {**DOG_PHOTOS, "Dataset_Info.JSON": b'{"instance_prompt": "a photo of sks dog"}', "notes.txt": b"hi"}
        )
        (note,) = h.notifications()
        assert note["subject"] == "DreamBooth: new model is live"
        assert "skipped Dataset_Info.JSON: did you mean dataset_info.json?" in note["message"]
        assert "skipped notes.txt: only .jpg, .jpeg and .png files are used" in note["message"]


@pytest.mark.parametrize("encode", [False, True], ids=["plain", "url-encoded"])
def test_event_keys_work_in_both_forms_and_messages_show_names_as_typed(synthesized, encode):
    with harness(synthesized) as h:
        # A folder name with a space and a non-ASCII letter: refused, named as the user typed it.
        event = h.put("datasets/my d\u00f6g/photo 1.jpg", jpeg_bytes())
        if encode:
            event["detail"]["object"]["key"] = quote_plus(event["detail"]["object"]["key"], safe="/")
        answer = h.deliver(event)
        assert answer["action"] == "rejected" and answer["dataset"] == "my d\u00f6g"
        (note,) = h.notifications()
        assert "datasets/my d\u00f6g/" in note["message"]
        # A valid dataset whose file names hold spaces trains from either form.
        for name, body in DOG_PHOTOS.items():
            event = h.put(f"datasets/dog/my {name}", body)
            if encode:
                event["detail"]["object"]["key"] = quote_plus(event["detail"]["object"]["key"], safe="/")
            h.deliver(event)
        h.wait_until_idle(60)
        (model,) = h.models().values()
        assert model["status"] == "live", model
