"""Training from the browser, end to end in Chromium on the emulator: photos dropped on the page go up
with presigned POSTs to the staging prefix, the API's commit judges them with the pipeline's own
rules and copies them into datasets/<name>/, and the page follows the real state machines (moto's
Step Functions, the real Lambda handlers, simulated SageMaker: emulator/) until the model is live.

What stands in for AWS: the harness (emulator/README.md); moto's S3 behind Playwright's routing
for the bucket's host (tests/web/conftest.py); and, for S3's EventBridge notifications, this test
delivering an "Object Created" event for each object the commit wrote, as EventBridge would.
"""

from __future__ import annotations

import io
import threading
import time

import pytest
from playwright.sync_api import expect

from emulator import PipelineHarness, SageMakerSimulator, synthesize
from emulator.api_gateway import ApiGatewayAdapter
from emulator.lambda_runtime import load
from emulator.pipeline_harness import BUCKET_NAME, FAST_CONTEXT
from tests.conftest import ROOT
from tests.web.conftest import LocalApi
from tests.web.test_web_page import KEY, save_key

PROMPT = "a photo of sks dog"


def photo(colour: tuple[int, int, int], size: tuple[int, int] = (600, 700)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def as_files(photos: dict[str, bytes]) -> list[dict]:
    return [
        {"name": name, "mimeType": "image/png" if name.endswith(".png") else "image/jpeg", "buffer": data}
        for name, data in photos.items()
    ]


def train_from_page(page, url: str, photos: dict[str, bytes], dataset: str = "dog") -> None:
    """Open the page, save the key, drop the photos, name the dataset, give the phrase, start."""
    page.goto(url)
    save_key(page)
    page.locator("#photos").set_input_files(as_files(photos))
    page.get_by_label("Dataset name (letters, digits, hyphens)").fill(dataset)
    page.get_by_label("Prompt phrase (a rare word and the kind of thing)").fill(PROMPT)
    page.get_by_role("button", name="Upload and train").click()


@pytest.fixture(scope="module")
def synthesized():
    return synthesize(FAST_CONTEXT)


def deliver_commit_events(harness: PipelineHarness, prefix: str, stop: threading.Event) -> None:
    """Once the commit has written dataset_info.json, S3's events for every object under the prefix."""
    s3 = harness.client("s3")
    while not stop.is_set():
        listed = s3.list_objects_v2(Bucket=BUCKET_NAME, Prefix=prefix).get("Contents", [])
        if any(o["Key"].endswith("dataset_info.json") for o in listed):
            for obj in listed:
                harness.deliver(harness.s3_event(obj["Key"], size=obj["Size"], etag=obj["ETag"].strip('"')))
            return
        time.sleep(0.2)


def test_photos_dropped_on_the_page_train_a_model_that_goes_live(synthesized, page):
    photos = {f"dog{i}.jpg": photo((50 * i, 80, 160)) for i in range(3)}
    # Simulated training outlasts two of the page's 3 s polls, so the page is seen following it
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(training_s=7, endpoint_s=4)) as h:
        # The API function as synthesized: its asset folder, its environment (this pipeline's bucket,
        # registry and judge settings)
        spec = h.api_function
        staged_rules = spec.code_dir / "dreambooth_shared" / "dataset_rules.py"
        assert not staged_rules.is_symlink()  # the build copied the shared package into the asset
        assert staged_rules.read_bytes() == (ROOT / "dreambooth_shared" / "dataset_rules.py").read_bytes()
        handler = load(
            spec.code_dir,
            "handler",
            {**spec.environment, "POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_METRICS_DISABLED": "true"},
        )
        stop = threading.Event()
        events = threading.Thread(target=deliver_commit_events, args=(h, "datasets/dog/", stop), daemon=True)
        adapter = ApiGatewayAdapter(handler.lambda_handler)

        def as_the_api_role(environ, start_response):
            # Every AWS call the API makes (and the presigned POSTs it signs) with its role's
            # credentials, judged by the harness's IAM evaluation: a missing grant fails this test.
            with h.iam.acting_as(spec.role):
                return adapter.wsgi_app(environ, start_response)

        with LocalApi(as_the_api_role) as api:
            page.goto(api.url)
            save_key(page)
            expect(page.locator("#generate-hint")).to_contain_text("No model is live yet")
            events.start()
            try:
                # When photos are dropped (chosen) with a name and the prompt phrase
                page.locator("#photos").set_input_files(as_files(photos))
                expect(page.locator("#photo-summary")).to_contain_text("3 photo(s)")
                page.get_by_label("Dataset name (letters, digits, hyphens)").fill("dog")
                page.get_by_label("Prompt phrase (a rare word and the kind of thing)").fill(PROMPT)
                page.get_by_role("button", name="Upload and train").click()

                # Then the page follows validation, training and deployment until the model is live
                live = page.locator('#train-phases li[data-phase="live"]')
                expect(live).to_be_visible(timeout=120_000)
            finally:
                stop.set()
                events.join(timeout=5)
            phases = page.locator("#train-phases li").all_inner_texts()
            assert phases[0].startswith("[0s] Uploaded; the pipeline starts once no photo has arrived")
            assert all(p.startswith("[") and "s] " in p for p in phases)  # each with the elapsed time
            assert any("Training on SageMaker" in p for p in phases), phases
            expect(live).to_contain_text(f"prompt phrase “{PROMPT}”")
            expect(page.locator("#train-progress")).to_contain_text("is live after")
            # And the page now offers the new model's phrase and lets the user generate
            expect(page.locator("#phrase")).to_have_text(PROMPT)
            expect(page.get_by_role("button", name="Generate")).to_be_enabled()
            calls = [c[:2] for c in api.data_calls()]
            assert ("POST", "/datasets") in calls and ("POST", "/datasets/dog/commit") in calls
            assert {c[2] for c in api.data_calls()} == {KEY}
        h.wait_until_idle(30)
        registry = h.registry()
        keys = sorted(o["Key"] for o in h.client("s3").list_objects_v2(Bucket=BUCKET_NAME)["Contents"])

    (model_id,) = [m for m, item in registry.items() if item.get("dataset") == "dog"]
    assert registry[model_id]["status"] == "live" and registry[model_id]["instancePrompt"] == PROMPT
    assert [k for k in keys if k.startswith("datasets/dog/")] == [
        "datasets/dog/dataset_info.json",
        "datasets/dog/dog0.jpg",
        "datasets/dog/dog1.jpg",
        "datasets/dog/dog2.jpg",
    ]
    assert not [k for k in keys if k.startswith("uploads/")]  # the staging objects were deleted
    assert page.errors == []


def test_photos_the_pipeline_would_refuse_show_every_reason_and_commit_nothing(harness, local_api, page):
    # Given three photos: one real, one too small, one that is text named .jpg
    photos = {
        "a.jpg": photo((10, 20, 30)),
        "b.jpg": photo((40, 50, 60), size=(100, 100)),
        "c.jpg": b"not a photo at all",
    }
    train_from_page(page, local_api.url, photos)

    # Then every reason the pipeline gives is listed, in its words, with what to do
    alert = page.locator("#train-error")
    expect(alert.locator(".error-title")).to_have_text(
        "The pipeline would refuse these photos; nothing was added to the dataset."
    )
    reasons = alert.locator("li")
    expect(reasons).to_have_count(3)
    texts = reasons.all_inner_texts()
    assert texts[0].startswith("b.jpg:") and texts[1].startswith("c.jpg:")
    assert texts[2] == "1 usable images; at least 3 are needed: add .jpg or .png photos to datasets/dog/"
    # And nothing was committed (nor left in staging)
    listed = harness.s3.list_objects_v2(Bucket="test-data-bucket").get("Contents", [])
    assert [o["Key"] for o in listed] == []
    expect(page.locator("#train-phases")).to_be_hidden()
    assert page.errors == []


def test_an_existing_dataset_name_is_refused_before_any_upload(harness, local_api, page):
    harness.s3.put_object(Bucket="test-data-bucket", Key="datasets/dog/old.jpg", Body=photo((1, 2, 3)))
    train_from_page(page, local_api.url, {f"d{i}.jpg": photo((i, 9, 9)) for i in range(3)})
    expect(page.locator("#train-error .error-title")).to_have_text("Not possible right now.")
    expect(page.locator("#train-error .error-fix")).to_contain_text("already exists")
    listed = harness.s3.list_objects_v2(Bucket="test-data-bucket")["Contents"]
    assert [o["Key"] for o in listed] == ["datasets/dog/old.jpg"]


def test_a_failed_training_is_shown_with_the_pipelines_reason_and_survives_a_reload(harness, local_api, page):
    # Given photos uploaded and committed from the page (the API harness: no state machine runs here)
    page.clock.install()
    train_from_page(page, local_api.url, {f"d{i}.jpg": photo((i, 90, 9)) for i in range(3)})
    expect(page.locator('#train-phases li[data-phase="waiting"]')).to_be_visible()
    # When the page is reloaded and the registry then records the dataset's model as failed
    page.reload()
    expect(page.locator('#train-phases li[data-phase="waiting"]')).to_be_visible()
    harness.put_model("dog-20261201100000", status="failed", failureReason={"S": "training failed: CUDA out of memory"})
    page.clock.run_for(3_000)  # the page looks again every 3 s (not on the wall clock here)
    # Then the page shows the failure with the pipeline's reason and the elapsed time
    failed = page.locator('#train-phases li[data-phase="failed"]')
    expect(failed).to_contain_text("Failed: training failed: CUDA out of memory", timeout=15_000)
    expect(page.locator("#train-progress")).to_contain_text("Training dog failed after")
    assert page.evaluate("localStorage.getItem('dreambooth.training')") is None
