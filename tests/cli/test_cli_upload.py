"""`dreambooth upload`: the pipeline's rules before any upload, the upload order, following the training."""

from __future__ import annotations

import hashlib
import io
import json

import boto3
import pytest
from PIL import Image

from scripts.cli import dataset_upload
from tests.api.conftest import BUCKET, REGION
from tests.cli.conftest import bucket_keys, put_order, write_image

PROMPT = "a photo of sks dog"


def read_object(key: str) -> bytes:
    return boto3.client("s3", region_name=REGION).get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_the_cli_uses_the_pipeline_validators_own_module():
    import s3_dataset  # the validation's module (lambda/intake), as its function imports it

    assert dataset_upload.rules() is s3_dataset.rules
    assert s3_dataset.rules.__name__ == "dreambooth_shared.dataset_rules"


def test_a_dataset_the_pipeline_would_refuse_is_refused_and_nothing_is_uploaded(run, photos):
    # Given a folder with a text file posing as a JPEG and only two real photos
    (photos / "dog0.jpg").write_text("not really a photo")
    # When uploading it
    code, out, err = run("upload", str(photos), "--name", "dog", "--prompt", PROMPT)
    # Then the pipeline's reasons are shown, the command fails, and the bucket holds nothing
    assert code == 1
    assert "dog0.jpg: not a PNG or JPEG image" in err
    assert "2 usable images; at least 3 are needed" in err
    assert bucket_keys() == []


def test_refusal_in_json_lists_every_reason_and_the_skipped_files(run, photos):
    (photos / "huge.png").write_bytes(b"")
    write_image(photos / "tiny.png", size=(100, 100), fmt="PNG")
    code, body, _ = run.json("upload", str(photos), "--name", "dog", "--prompt", "x")
    assert code == 1
    assert body["ok"] is False and body["uploaded"] == []
    assert any(r.startswith("tiny.png: 100x100 is too small") for r in body["reasons"])
    assert any(r.startswith("huge.png: not a PNG or JPEG") for r in body["reasons"])
    assert (
        'dataset_info.json: instance_prompt must be 3-300 characters long (it has 1): write e.g. "a photo of sks dog"'
        in body["reasons"]
    )
    assert body["warnings"] == ["skipped .DS_Store: hidden files are not used"]
    assert bucket_keys() == []


def test_bad_dataset_name_is_a_usage_error(run, photos):
    code, _, err = run("upload", str(photos), "--name", "my dog", "--prompt", PROMPT, "--no-wait")
    assert code == 2
    assert "letters, digits or hyphens" in err
    assert bucket_keys() == []


IMAGES = ["dog0.jpg", "dog1.jpg", "dog2.jpg"]


def test_upload_stages_every_image_then_copies_them_then_writes_dataset_info_last(run, photos):
    order = put_order(run.session)
    code, body, err = run.json(
        "upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--class-prompt", "a photo of a dog", "--no-wait"
    )
    assert code == 0, err
    staging = body["staging_prefix"]
    assert staging.startswith("uploads/dog/") and staging.endswith("/") and staging.count("/") == 3
    # Then: every image to staging (outside datasets/, which the pipeline's rule matches), then the
    # copies into datasets/dog/, then dataset_info.json, then this run's staging objects deleted
    assert order == (
        [staging + n for n in IMAGES]
        + [f"copy datasets/dog/{n}" for n in IMAGES]
        + ["datasets/dog/dataset_info.json"]
        + [f"delete {staging}{n}" for n in IMAGES]
    )
    assert sorted(bucket_keys()) == [
        f"datasets/dog/{n}" for n in ["dataset_info.json"] + IMAGES
    ]  # .DS_Store stayed home
    assert json.loads(read_object("datasets/dog/dataset_info.json")) == {
        "instance_prompt": PROMPT,
        "class_prompt": "a photo of a dog",
    }
    assert read_object("datasets/dog/dog1.jpg") == (photos / "dog1.jpg").read_bytes()
    head = boto3.client("s3", region_name=REGION).head_object(Bucket=BUCKET, Key="datasets/dog/dog1.jpg")
    assert head["ContentType"] == "image/jpeg"  # the copy keeps the staged object's metadata
    assert body["uploaded"] == [f"datasets/dog/{n}" for n in IMAGES] + ["datasets/dog/dataset_info.json"]
    assert body["bucket"] == BUCKET and body["resized"] is False and body["staging_left"] == []
    assert "skipped .DS_Store" in err
    assert "uploaded 4/4 dataset_info.json" in err  # plain progress lines: stderr is not a terminal


def test_copies_and_dataset_info_are_conditional_writes(run, photos):
    # Given a record of the write requests' parameters
    writes = []
    for operation in ("CopyObject", "PutObject"):
        run.session.events.register(
            f"before-parameter-build.s3.{operation}",
            lambda params, model, **_: writes.append((model.name, params["Key"], params.get("IfNoneMatch"))),
        )
    code, _, err = run("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--no-wait")
    assert code == 0, err
    # Then every write under datasets/ asks S3 to refuse it if the key exists
    into_datasets = [w for w in writes if w[1].startswith("datasets/")]
    assert len(into_datasets) == 4 and all(w[2] == "*" for w in into_datasets)
    assert {w[0] for w in into_datasets} == {"CopyObject", "PutObject"}


def test_a_dataset_that_appears_while_staging_is_not_overwritten(run, photos):
    # Given someone else uploading datasets/dog/ while the photos go up to staging
    s3 = boto3.client("s3", region_name=REGION)
    staged = []

    def meanwhile(params, **_):
        staged.append(params["Key"])
        if len(staged) == 3:
            s3.put_object(Bucket=BUCKET, Key="datasets/dog/dog0.jpg", Body=b"their photo")

    run.session.events.register("before-parameter-build.s3.PutObject", meanwhile)
    code, _, err = run("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--no-wait")
    # Then the name is refused before any copy (moto 5.2.5 ignores IfNoneMatch on CopyObject, so this
    # check, not S3, is what the test sees), and their photo is untouched
    assert code == 1 and "already holds files" in err
    assert bucket_keys() == ["datasets/dog/dog0.jpg"]  # this run's staging objects deleted
    assert read_object("datasets/dog/dog0.jpg") == b"their photo"


def test_s3_refuses_a_conditional_put_onto_an_existing_key(run, photos):
    # moto honours IfNoneMatch on PutObject (not on CopyObject): dataset_info.json is never overwritten
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="datasets/dog/dataset_info.json", Body=b"{}")
    try:
        s3.put_object(Bucket=BUCKET, Key="datasets/dog/dataset_info.json", Body=b"x", IfNoneMatch="*")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "PreconditionFailed"
    else:
        raise AssertionError("moto overwrote a key despite IfNoneMatch")
    assert read_object("datasets/dog/dataset_info.json") == b"{}"


@pytest.mark.usefixtures("sigint_from_a_terminal")
def test_an_upload_interrupted_while_staging_leaves_nothing_under_datasets(run, photos):
    import os
    import signal
    import threading
    import time

    # Given Ctrl-C (a real SIGINT, as the terminal sends it to the main thread) while the third image
    # is going up (the old upload put images straight into datasets/). The upload runs on s3transfer's
    # worker thread; that thread holds the third PutObject until the main thread has taken the
    # KeyboardInterrupt (and, usually, cancelled the transfer: the body then refuses reads). Whether
    # that cut-short PutObject still lands depends on the threads' order, as for a real Ctrl-C.
    order = put_order(run.session)
    interrupted = threading.Event()

    def on_sigint(signum, frame):
        interrupted.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)  # sigint_from_a_terminal restores the previous handler

    def cancelled(body) -> bool:
        try:
            body.read(0)
        except Exception:  # s3transfer's reader raises the transfer's cancellation
            return True
        return False

    def ctrl_c(params, **_):
        if len(order) == 3:
            os.kill(os.getpid(), signal.SIGINT)
            deadline = time.monotonic() + 30
            while not (interrupted.is_set() and cancelled(params["Body"])) and time.monotonic() < deadline:
                time.sleep(0.005)

    run.session.events.register("before-parameter-build.s3.PutObject", ctrl_c)
    code, out, err = run("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--no-wait")
    assert interrupted.is_set()
    # Then nothing is under datasets/dog/ (no event the pipeline listens to, so no training), and the
    # message counts every staging object that may remain (the one whose call was cut short too) and
    # says they are safe to delete
    assert code == 130
    assert bucket_keys("datasets/") == []
    staged = bucket_keys("uploads/dog/")
    names = [k.rsplit("/", 1)[1] for k in staged]
    assert names in (["dog0.jpg", "dog1.jpg"], ["dog0.jpg", "dog1.jpg", "dog2.jpg"])  # the third: cut short
    staging = staged[0].rsplit("/", 1)[0] + "/"
    assert "Interrupted while uploading to the staging area: nothing was written under" in err
    assert "so no training starts" in err and f"s3://{BUCKET}/{staging}" in err and "safe to delete" in err
    assert "Up to 3 staging objects" in err


@pytest.mark.usefixtures("sigint_from_a_terminal")
def test_ctrl_c_during_the_copies_finishes_them_and_dataset_info_first(run, photos):
    import os
    import signal

    # Given Ctrl-C (a real SIGINT) during the first copy into datasets/
    order = put_order(run.session)
    run.session.events.register(
        "before-parameter-build.s3.CopyObject",
        lambda **_: os.kill(os.getpid(), signal.SIGINT) if len(order) == 4 else None,
    )
    code, body, err = run.json("upload", str(photos), "--name", "dog", "--prompt", PROMPT)
    # Then the dataset is complete before the command stops (exit 130, without following)
    assert code == 130
    assert "finishing the copies" in err and "the upload finished first" in err
    assert sorted(bucket_keys()) == [f"datasets/dog/{n}" for n in ["dataset_info.json"] + IMAGES]
    assert body["uploaded"][-1] == "datasets/dog/dataset_info.json"
    assert run.api.requests[-1]["path"].endswith("/models")  # only the check before the upload
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_folders_own_dataset_info_keeps_its_hyperparameters_and_gets_the_command_line_prompt(run, photos):
    (photos / "dataset_info.json").write_text(json.dumps({"instance_prompt": "old words", "max_steps": 300}))
    code, _, err = run("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--no-wait")
    assert code == 0, err
    assert json.loads(read_object("datasets/dog/dataset_info.json")) == {"instance_prompt": PROMPT, "max_steps": 300}


def test_a_hyperparameter_the_pipeline_refuses_is_refused_before_upload(run, photos):
    (photos / "dataset_info.json").write_text(json.dumps({"hyperparameters": {"max_stepz": 300}}))
    code, _, err = run("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--no-wait")
    assert code == 1
    assert "hyperparameter 'max_stepz' cannot be overridden" in err
    assert bucket_keys() == []


def test_an_existing_dataset_is_never_overwritten(run, photos):
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key="datasets/dog/dog0.jpg", Body=b"their photo")
    code, _, err = run("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--no-wait")
    assert code == 1
    assert "already holds files" in err and "--name dog-2" in err
    assert bucket_keys() == ["datasets/dog/dog0.jpg"]
    assert read_object("datasets/dog/dog0.jpg") == b"their photo"


def test_resize_uploads_512_px_centre_crops_and_leaves_the_originals_alone(run, photos):
    write_image(photos / "wide.png", size=(3000, 1000), fmt="PNG")
    before = {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in photos.iterdir()}
    code, body, err = run.json("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--resize", "--no-wait")
    assert code == 0, err
    after = {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in photos.iterdir()}
    assert after == before
    assert body["resized"] is True
    for name, fmt in (("dog0.jpg", "JPEG"), ("wide.png", "PNG")):
        with Image.open(io.BytesIO(read_object(f"datasets/dog/{name}"))) as image:
            assert (image.size, image.format) == ((512, 512), fmt)


def test_resize_accepts_photos_above_the_size_limits_because_the_copies_are_within_them(run, photos):
    write_image(photos / "panorama.jpg", size=(9000, 600))
    code, _, err = run("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--no-wait")
    assert code == 1 and "longer side must be at most 8192 px" in err
    code, _, err = run("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--no-wait", "--resize")
    assert code == 0, err
    assert "datasets/dog/panorama.jpg" in bucket_keys()


def test_dry_run_checks_without_any_aws_call(run, photos):
    calls = []
    run.session.events.register("before-call", lambda model, **_: calls.append(model.name))
    code, body, _ = run.json("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--dry-run")
    assert code == 0 and body["ok"] is True and body["uploaded"] == []
    assert body["images"] == ["dog0.jpg", "dog1.jpg", "dog2.jpg"]
    assert calls == [] and bucket_keys() == []


# ---- following the training --------------------------------------------------------------------

MODEL_ID = "dog-20261125110000"


def test_upload_follows_the_pipeline_until_the_model_is_live(run, harness, photos):
    from tests.api.conftest import create_endpoint

    # Given the pipeline moving on between the CLI's polls (an older model of another dataset exists)
    harness.put_model("cat-20261120100000", status="retired")
    run.clock.at_sleep(2, lambda: harness.put_model(MODEL_ID, status="validating", dataset={"S": "dog"}))
    run.clock.at_sleep(3, lambda: harness.put_model(MODEL_ID, status="training", dataset={"S": "dog"}))
    run.clock.at_sleep(4, lambda: harness.put_model(MODEL_ID, status="deploying", dataset={"S": "dog"}))

    def live() -> None:
        harness.put_model(MODEL_ID, status="live", dataset={"S": "dog"})
        harness.set_live(MODEL_ID)
        create_endpoint(MODEL_ID)

    run.clock.at_sleep(6, live)
    # When uploading and following
    code, body, err = run.json("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--poll-seconds", "30")
    # Then every phase was shown with its elapsed time, and the command ends when the model is live
    assert code == 0, err
    assert [p["phase"] for p in body["phases"]] == ["waiting", "validating", "training", "deploying", "live"]
    assert [p["elapsed_s"] for p in body["phases"]] == [0, 60, 90, 120, 180]
    assert body["ok"] is True and body["model"]["model_id"] == MODEL_ID
    assert "[  1m30s] training on SageMaker" in err
    assert run.clock.sleeps == [30.0] * 6


def test_upload_reports_a_rejected_dataset_with_the_pipelines_reason(run, harness, photos):
    reason = "invalid dataset: dog1.jpg: damaged JPEG: marker expected"
    run.clock.at_sleep(
        1, lambda: harness.put_model(MODEL_ID, status="failed", dataset={"S": "dog"}, failureReason={"S": reason})
    )
    code, out, err = run("upload", str(photos), "--name", "dog", "--prompt", PROMPT)
    assert code == 1
    assert f"Failed: {reason}" in err


def test_following_stops_at_the_timeout_and_says_the_training_goes_on(run, photos):
    code, body, err = run.json(
        "upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--timeout", "100", "--poll-seconds", "30"
    )
    assert code == 1
    assert body["ok"] is False and body["phase"] == "waiting"
    assert "timed out after 1m40s while waiting" in body["reason"]
    assert sum(run.clock.sleeps) == 100
    assert len(bucket_keys("datasets/dog/")) == 4  # the upload itself stands


def test_no_wait_needs_no_api(run, photos):
    code, _, err = run("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--no-wait")
    assert code == 0, err
    assert run.api.requests == []


def _screen_lines(text: str) -> list[str]:
    """What a terminal shows, line by line: ANSI escapes dropped, each \\r-rewrite its own entry."""
    import re as _re

    plain = _re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return [part for line in plain.split("\n") for part in line.split("\r") if part.strip()]


def test_progress_on_a_terminal_is_a_rich_bar_and_messages_get_lines_of_their_own():
    import io as _io

    from scripts.cli.progress import ByteProgress

    stream = _io.StringIO()
    progress = ByteProgress(2 * 1_048_576, 2, stream, tty=True, width=100)
    progress("a.jpg", 1_048_576)
    progress.file_done("a.jpg")
    progress.say("all 2 images staged; copying them into datasets/dog/")
    progress("b.jpg", 1_048_576)
    progress.file_done("b.jpg")
    progress.close()
    lines = _screen_lines(stream.getvalue())
    # The message is a line of its own: no bar before or after it on that line
    assert "all 2 images staged; copying them into datasets/dog/" in [line.strip() for line in lines]
    bars = [line for line in lines if "MiB" in line]  # the DownloadColumn (the speed column varies with load)
    assert bars and all("staged" not in line for line in bars)
    assert "2.0/2.0 MiB" in bars[-1] and "2/2 files" in bars[-1]
    assert "uploaded" not in stream.getvalue()  # the per-file lines are for logs, not terminals


def test_progress_without_a_terminal_is_one_line_per_file_and_plain_messages():
    import io as _io

    from scripts.cli.progress import ByteProgress

    stream = _io.StringIO()
    progress = ByteProgress(2048, 2, stream, tty=False)
    progress("a.jpg", 1024)
    progress.file_done("a.jpg")
    progress.say("a message")
    progress("b.jpg", 1024)
    progress.file_done("b.jpg")
    progress.close()
    assert stream.getvalue().splitlines() == [
        "uploaded 1/2 a.jpg (1 KB; 1 KB of 2 KB)",
        "a message",
        "uploaded 2/2 b.jpg (1 KB; 2 KB of 2 KB)",
    ]
    assert "\x1b" not in stream.getvalue() and "\r" not in stream.getvalue()


def test_a_failed_staging_upload_leaves_nothing_under_datasets_and_deletes_nothing(run, photos):
    # Given S3 refusing the third file (the botocore boundary: a handler answering for the call)
    calls = []

    def refuse_third(params, **_):
        calls.append(params["Key"])
        if len(calls) == 3:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")

    run.session.events.register("before-parameter-build.s3.PutObject", refuse_third)
    code, _, err = run("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--no-wait")
    assert code == 1
    assert "Upload failed" in err and "nothing was written under" in err and "Nothing was deleted" in err
    assert bucket_keys("datasets/") == []
    assert [k.rsplit("/", 1)[1] for k in bucket_keys("uploads/dog/")] == ["dog0.jpg", "dog1.jpg"]


def test_nothing_is_copied_unless_every_image_is_staged_whole(run, photos):
    # Given a staged image gone by the time the CLI checks staging (an upload that reported success
    # without its object: the check does not trust the transfer's own word)
    s3 = boto3.client("s3", region_name=REGION)

    def lose_one(params, **_):
        if params.get("Prefix", "").startswith("uploads/"):
            s3.delete_object(Bucket=BUCKET, Key=params["Prefix"] + "dog1.jpg")

    run.session.events.register("before-parameter-build.s3.ListObjectsV2", lose_one)
    code, _, err = run("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--no-wait")
    assert code == 1
    assert "staged images missing or incomplete, e.g. dog1.jpg" in err and "nothing was written under" in err
    assert bucket_keys("datasets/") == []


def test_a_failed_copy_says_how_much_of_the_dataset_is_there(run, photos):
    # Given S3 refusing the second copy into datasets/ (e.g. the key appeared meanwhile: 412)
    copies = []

    def refuse_second(params, **_):
        copies.append(params["Key"])
        if len(copies) == 2:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "PreconditionFailed", "Message": "pre-conditions"}}, "CopyObject")

    run.session.events.register("before-parameter-build.s3.CopyObject", refuse_second)
    code, _, err = run("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--no-wait")
    assert code == 1
    assert "while copying into" in err and "1 of 3 images are there, without dataset_info.json" in err
    assert "Nothing was deleted or overwritten" in err
    assert bucket_keys("datasets/") == ["datasets/dog/dog0.jpg"]
    assert len(bucket_keys("uploads/dog/")) == 3  # left for the user, named in the message


def test_what_the_cli_uploads_passes_the_pipelines_own_reading_of_the_bucket(run, photos):
    # Given a folder with its own dataset_info.json, uploaded with --resize
    (photos / "dataset_info.json").write_text(json.dumps({"hyperparameters": {"max_steps": 250}}))
    write_image(photos / "big.png", size=(2000, 1500), fmt="PNG")
    code, body, err = run.json("upload", str(photos), "--name", "dog", "--prompt", PROMPT, "--resize", "--no-wait")
    assert code == 0, err
    # When the pipeline's validation reads the bucket as its Lambda does (snapshot, If-Match heads)
    import s3_dataset  # lambda/intake (pytest.ini's pythonpath)
    from dreambooth_shared import dataset_rules as pipeline_rules

    s3 = boto3.client("s3", region_name=REGION)
    snapshot = s3_dataset.take_snapshot(s3, BUCKET, "dog")
    files, info = s3_dataset.load_files(s3, BUCKET, snapshot, 20 * 1_048_576)
    verdict = pipeline_rules.evaluate(
        "dog",
        files,
        read_info=lambda: info,
        default_instance_prompt="a photo of sks {dataset}",
        default_class_prompt="",
        default_hyperparameters={"max_steps": "400"},
        training_instance_type="ml.g4dn.2xlarge",
    )
    # Then it accepts the same images with the prompt and overrides the CLI showed
    assert verdict.valid, verdict.reasons
    assert verdict.image_names == body["images"] == ["big.png", "dog0.jpg", "dog1.jpg", "dog2.jpg"]
    assert verdict.instance_prompt == body["instance_prompt"] == PROMPT
    assert verdict.hyperparameters["max_steps"] == "250"
    assert verdict.warnings == []  # nothing the pipeline would skip was uploaded
