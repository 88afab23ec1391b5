"""The web page in headless Chromium, against the real API handler on a local server (moto behind it)."""

from __future__ import annotations

import io
import json
import re

import boto3
import pytest
from PIL import Image, ImageChops, ImageStat
from playwright.sync_api import expect

from emulator.api_gateway import lambda_context
from tests.api.conftest import ACCOUNT, ENDPOINT, REGION, create_endpoint, jumpstart_answer
from tests.web.conftest import VIEWPORT, screenshot, screenshot_path

MODEL = "dog-20261120100000"
KEY = "local-test-key-7f3a"
PROMPT = "a photo of sks dog on the beach"
# Two images in colours that appear nowhere else on the page, so the screenshot can be searched for them.
COLOURS = [(230, 30, 140), (20, 170, 90)]


def jpeg(colour: tuple[int, int, int], size: int = 64) -> bytes:
    image = Image.new("RGB", (size, size), colour)
    for x in range(size):  # a stripe, so that the image is not one flat colour
        image.putpixel((x, x), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def set_endpoint_status(status: str) -> None:
    from moto.sagemaker.models import sagemaker_backends

    # moto marks endpoints InService at once; the other states are set on moto's record.
    sagemaker_backends[ACCOUNT][REGION].endpoints[ENDPOINT].endpoint_status = status


def save_key(page) -> None:
    page.get_by_label("API key (kept in this browser only)").fill(KEY)
    page.get_by_role("button", name="Save key").click()
    expect(page.locator("#key-saved")).to_be_visible()


def fact(card, name: str):
    return card.locator(f'dd[data-fact="{name}"]')


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def test_key_generate_gallery_status_and_reload(harness, local_api, page):
    # Given a live model on an in-service endpoint that will answer with two images, and a model training
    harness.live_model(MODEL)
    harness.put_model("cow-20261122000000", status="training")
    create_endpoint(MODEL)
    harness.queue_results(*(jumpstart_answer(jpeg(c)) for c in COLOURS))

    # When the page is opened with no key saved
    answer = page.goto(local_api.url)
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    expect(page.get_by_role("button", name="Generate")).to_be_disabled()
    expect(page.locator("#progress")).to_have_text("Save the API key to start.")
    expect(page.get_by_role("button", name="Forget key")).to_be_hidden()
    expect(page.get_by_role("button", name="Stop waiting")).to_be_hidden()
    expect(page.locator("#iam-notice")).to_be_hidden()
    empty_shot = screenshot(page, "empty")
    assert local_api.data_calls() == []  # nothing is asked of the API without a key

    # And the key is entered once
    save_key(page)
    expect(page.locator("#key-tail")).to_have_text("ends in …7f3a")

    # Then the status panel shows the endpoint, the live model and the training
    expect(page.locator("#endpoint-state")).to_have_text(f"{ENDPOINT}: in service")
    expect(page.locator("#live-model")).to_contain_text(MODEL)
    expect(page.locator("#live-prompt")).to_have_text("a photo of a Doppler dog")
    # One time format: local time (Paris, UTC+1 in November), UTC on hover
    expect(page.locator("#training")).to_have_text("cow-20261122000000: training (since Nov 20, 2026, 12:00 PM)")
    expect(page.locator("#training time")).to_have_attribute("title", "2026-11-20 11:00:00 UTC")

    # When a prompt is generated with chosen parameters
    page.get_by_label("Prompt", exact=True).fill(PROMPT)
    page.get_by_label("Images").select_option("2")
    page.get_by_label("Size (width × height)").select_option("768x512")
    page.get_by_label("Steps").fill("30")
    page.get_by_label("Guidance").fill("8.5")
    page.get_by_label("Seed (empty: random)").fill("42")
    page.get_by_role("button", name="Generate").click()

    # Then the gallery shows both images, loaded, with their parameters
    card = page.locator("article.generation")
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#progress")).to_have_text("Done: 2 image(s).")
    expect(card.get_by_role("heading")).to_have_text(PROMPT)
    images = card.get_by_role("img")
    expect(images).to_have_count(2)
    for index, seed in enumerate((42, 43)):
        expect(images.nth(index)).to_have_attribute("alt", f"Image {index + 1} of 2 for “{PROMPT}”, seed {seed}")
        # Loaded and decoded (the CSP lets presigned S3 URLs through): the JPEGs are 64 px wide
        expect(images.nth(index)).to_have_js_property("naturalWidth", 64)
    expect(fact(card, "seed")).to_have_text("42 to 43")
    expect(fact(card, "steps")).to_have_text("30")
    expect(fact(card, "guidance")).to_have_text("8.5")
    expect(fact(card, "size")).to_have_text("768 × 512")
    expect(fact(card, "model")).to_have_text(MODEL)

    # And the API got the parameters as typed, and every data call carried the key
    (generation,) = harness.ddb.scan(TableName="test-generations")["Items"]
    assert generation["prompt"]["S"] == PROMPT
    posts = [c for c in local_api.data_calls() if c[0] == "POST"]
    assert posts == [("POST", "/generations", KEY)]
    assert {c[2] for c in local_api.data_calls()} == {KEY}

    # And the screenshot shows the two images in the gallery, which the empty page did not have
    shot = screenshot(page, "gallery")
    check_gallery_screenshot(page, shot, empty_shot)
    assert page.errors == []

    # When the page is reloaded
    calls_before = len(local_api.data_calls())
    page.reload()

    # Then the key is still there, and the gallery comes back with freshly signed image links
    expect(page.locator("#key-saved")).to_be_visible()
    expect(page.locator("#key-form")).to_be_hidden()
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    expect(page.locator("article.generation img")).to_have_count(2)
    reloaded = local_api.data_calls()[calls_before:]
    assert ("GET", f"/generations/{generation['generationId']['S']}", KEY) in reloaded

    # When the key is forgotten, it is gone from the browser
    page.get_by_role("button", name="Forget key").click()
    expect(page.get_by_label("API key (kept in this browser only)")).to_be_visible()
    expect(page.get_by_role("button", name="Forget key")).to_be_hidden()
    expect(page.get_by_role("button", name="Generate")).to_be_disabled()
    assert page.evaluate("localStorage.getItem('dreambooth.apiKey')") is None
    assert page.errors == []


def check_gallery_screenshot(page, shot, empty_shot) -> None:
    image = Image.open(shot)
    image.load()  # decodes the whole PNG
    empty = Image.open(empty_shot)
    assert image.format == "PNG" and image.size == (VIEWPORT["width"], VIEWPORT["height"]) == empty.size
    box = page.locator("#gallery-section").bounding_box()
    assert box and box["width"] > 200 and box["height"] > 100
    region = tuple(
        round(v)
        for v in (box["x"], box["y"], box["x"] + box["width"], min(box["y"] + box["height"], VIEWPORT["height"]))
    )
    gallery, before = image.convert("RGB").crop(region), empty.convert("RGB").crop(region)
    # Not blank, and not what the empty page showed there
    assert max(ImageStat.Stat(gallery).stddev) > 10
    assert ImageChops.difference(gallery, before).getbbox() is not None
    # Each image's colour fills a good part of the gallery (a 14rem-wide image each)
    pixels = list(gallery.get_flattened_data())
    for colour in COLOURS:
        share = sum(near(p, colour) for p in pixels) / len(pixels)
        assert share > 0.02, (colour, share)
        assert not any(near(p, colour) for p in before.get_flattened_data())


def test_the_page_works_when_opened_without_the_trailing_slash(harness, local_api, page):
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    page.goto(local_api.url.rstrip("/"))  # http://127.0.0.1:<port>/prod
    save_key(page)
    expect(page.locator("#endpoint-state")).to_have_text(f"{ENDPOINT}: in service")
    assert ("GET", "/status", KEY) in local_api.data_calls()
    assert page.errors == []


def test_a_generation_queued_while_the_endpoint_is_created_shows_why_and_finishes(harness, local_api, page):
    # Given a live model whose endpoint is being created (the API queues the request, saying why)
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    set_endpoint_status("Creating")
    page.clock.install()
    page.goto(local_api.url)
    save_key(page)
    expect(page.locator("#endpoint-state")).to_have_text(f"{ENDPOINT}: being created")

    # When a prompt is generated
    page.get_by_label("Prompt", exact=True).fill(PROMPT)
    page.get_by_label("Images").select_option("1")
    page.get_by_role("button", name="Generate").click()

    # Then the page shows it queued with the API's reason, and waits (one POST, no refusal)
    expect(page.locator("#progress")).to_contain_text("Queued: the endpoint is being created, usually up to 10 minutes")
    expect(page.get_by_role("button", name="Stop waiting")).to_be_visible()
    assert [c[:2] for c in local_api.data_calls()].count(("POST", "/generations")) == 1

    # When the endpoint comes into service and the dispatcher sends the request (SageMaker answers)
    set_endpoint_status("InService")
    harness.queue_results(jumpstart_answer(jpeg(COLOURS[0])))
    assert harness.dispatch_module.lambda_handler({}, lambda_context("dispatch"))["sent"] == 1
    page.clock.run_for(5_000)

    # Then its image shows
    expect(page.locator("#progress")).to_have_text("Done: 1 image(s).")
    expect(page.locator("article.generation img")).to_have_count(1)
    assert [c[:2] for c in local_api.data_calls()].count(("POST", "/generations")) == 1
    assert page.errors == []


def test_stop_waiting_ends_the_polling(harness, local_api, page):
    harness.live_model(MODEL)  # no endpoint at all: queued while it is re-created
    page.clock.install()
    page.goto(local_api.url)
    save_key(page)
    page.get_by_label("Prompt", exact=True).fill(PROMPT)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#progress")).to_contain_text("Queued: the endpoint is being re-created")

    page.get_by_role("button", name="Stop waiting").click()

    expect(page.locator("#progress")).to_contain_text("Stopped waiting.")
    page.clock.run_for(120_000)
    assert [c[:2] for c in local_api.data_calls()].count(("POST", "/generations")) == 1
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()


def test_errors_are_plain_words_with_the_fix_and_the_raw_message_behind_details(harness, local_api, page):
    # Given a live model, and a prompt the browser accepts but the API refuses (blank)
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    page.goto(local_api.url)
    save_key(page)
    page.get_by_label("Prompt", exact=True).fill("   ")
    page.get_by_role("button", name="Generate").click()

    # Then the page says what is wrong in plain words, with the fix; no API jargon in view
    alert = page.locator("#error")
    expect(alert).to_be_visible()
    expect(alert.locator(".error-title")).to_have_text("Some values are not accepted.")
    expect(alert.locator("li")).to_have_text("Prompt: must not be empty")
    expect(alert.locator(".error-fix")).to_have_text("Correct them and try again.")
    raw = alert.locator("details pre")
    expect(raw).to_be_hidden()
    # And the API's own message and the request id are behind the "Details" toggle
    alert.get_by_text("Details").click()
    expect(raw).to_be_visible()
    expect(raw).to_contain_text("BadRequest (HTTP 400): invalid request: prompt: must match the pattern")
    expect(raw).to_contain_text("Request id:")
    expect(page.locator("article.generation")).to_have_count(0)
    assert harness.ddb.scan(TableName="test-generations")["Items"] == []


def test_a_failed_generation_shows_the_reason(harness, local_api, page):
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    harness.queue_model_error("CUDA out of memory")
    page.goto(local_api.url)
    save_key(page)
    page.get_by_label("Prompt", exact=True).fill(PROMPT)
    page.get_by_label("Images").select_option("1")
    page.get_by_role("button", name="Generate").click()

    card = page.locator("article.generation")
    expect(card).to_have_attribute("data-status", "failed")
    expect(card.locator("p.error")).to_contain_text("CUDA out of memory")
    expect(page.locator("#progress")).to_contain_text("The generation failed:")


@pytest.fixture
def iam_api(api_module):
    """The handler as deployed with apiAuth=iam (the page needs no AWS call to say so)."""
    from emulator.api_gateway import ApiGatewayAdapter
    from emulator.lambda_runtime import API_CODE, load
    from tests.api.conftest import FUNCTION_ENV
    from tests.web.conftest import LocalApi

    module = load(API_CODE, "handler", {**FUNCTION_ENV, "API_AUTH": "iam"})
    with LocalApi(ApiGatewayAdapter(module.lambda_handler).wsgi_app) as server:
        yield server


def test_in_iam_mode_the_page_says_it_cannot_sign(iam_api, page):
    page.goto(iam_api.url)
    expect(page.get_by_role("alert").filter(has_text="apiAuth=iam")).to_be_visible()
    page.get_by_label("API key (kept in this browser only)").fill(KEY)
    page.get_by_role("button", name="Save key").click()
    expect(page.get_by_role("button", name="Generate")).to_be_disabled()
    assert iam_api.data_calls() == []


def test_models_are_listed_and_one_can_be_put_live(harness, local_api, page):
    # Given a live model, a retired one with a trained artifact, and one still training
    harness.live_model(MODEL)
    harness.put_model("cat-20261121000000", status="retired")
    harness.put_model("cow-20261122000000", status="training")
    create_endpoint(MODEL)
    page.goto(local_api.url)
    save_key(page)

    # Then the models table lists all three, and only the retired one can be put live
    rows = page.locator("#models tbody tr")
    expect(rows).to_have_count(3)
    expect(page.locator(f'#models tr[data-model="{MODEL}"] td').nth(1)).to_have_text("live")
    expect(page.get_by_role("button", name=re.compile(r"^Make .* live$"))).to_have_count(1)

    # When it is put live (and the confirmation accepted)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Make cat-20261121000000 live").click()

    # Then the deployment state machine was started for it, with the key, and the page says so
    expect(page.locator("#switch-result")).to_have_text(
        "Deploying cat-20261121000000: the endpoint is being updated; the current model serves until it is done."
    )
    assert ("PUT", "/models/live", KEY) in local_api.data_calls()
    (execution,) = boto3.client("stepfunctions", region_name=REGION).list_executions(
        stateMachineArn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:test-deploy"
    )["executions"]
    assert json.loads(
        boto3.client("stepfunctions", region_name=REGION).describe_execution(executionArn=execution["executionArn"])[
            "input"
        ]
    ) == {"modelId": "cat-20261121000000"}
    page.locator("#status-section").screenshot(path=str(screenshot_path("status")))
    assert page.errors == []


def test_a_deleted_endpoint_is_recreated_by_the_first_generation_which_waits_for_it(harness, local_api, page):
    # Given the endpoint deleted out of band (the model still live)
    harness.live_model(MODEL)
    page.clock.install()
    page.goto(local_api.url)
    save_key(page)
    expect(page.locator("#endpoint-state")).to_contain_text("no endpoint yet")

    # When the user asks for images, the real handler queues the request and starts the re-creation
    page.get_by_label("Prompt", exact=True).fill(PROMPT)
    page.get_by_role("button", name="Generate").click()

    # Then the page says why it waits; the deployment re-creating the endpoint runs for the live model
    expect(page.locator("#progress")).to_contain_text("re-created from the live model's configuration")
    sfn = boto3.client("stepfunctions", region_name=REGION)
    (heal,) = sfn.list_executions(stateMachineArn=f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:test-deploy")[
        "executions"
    ]
    assert json.loads(sfn.describe_execution(executionArn=heal["executionArn"])["input"]) == {"modelId": MODEL}
    assert page.errors == []


def test_a_generation_still_running_at_reload_is_followed_until_it_ends(harness, local_api, page):
    # Given a generation made in this browser that SageMaker has not answered yet
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    harness.mode = "defer"
    harness.queue_results(jumpstart_answer(jpeg(COLOURS[1])))
    generation_id = harness.api.call("POST", "/generations", {"prompt": PROMPT}).json()["id"]
    page.clock.install()
    page.goto(local_api.url)
    save_key(page)
    page.evaluate(f"localStorage.setItem('dreambooth.generations', JSON.stringify(['{generation_id}']))")

    # When the page is reloaded, it shows the generation as queued
    page.reload()
    card = page.locator(f'article[data-id="{generation_id}"]')
    expect(card).to_have_attribute("data-status", "queued")
    expect(card.locator(".placeholder")).to_have_count(1)

    # And once SageMaker's notice has come, the image appears without another reload
    harness.answer_deferred()
    page.clock.run_for(4_000)  # the page looks again every 4 s (not on the wall clock here)
    expect(card).to_have_attribute("data-status", "succeeded", timeout=15_000)
    expect(card.get_by_role("img")).to_have_js_property("naturalWidth", 64)
    assert page.errors == []


def test_a_transiently_failed_model_is_retrained_with_one_click(harness, local_api, page):
    # Given a model whose training failed for want of capacity, and one refused as an invalid dataset
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    harness.put_model(
        "cat-20261121000000",
        status="failed",
        retryable={"BOOL": True},
        failureReason={"S": "training failed: CapacityError: no ml.g4dn.2xlarge"},
    )
    harness.put_model("cow-20261122000000", status="failed", failureReason={"S": "invalid dataset: 2 usable images"})
    page.goto(local_api.url)
    save_key(page)

    # Then only the retryable one has a Retry button
    retry = page.get_by_role("button", name="Retry training cat-20261121000000")
    expect(retry).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"^Retry training"))).to_have_count(1)

    # When it is double-clicked
    retry.dblclick()

    # Then one retrain was started, with the key, and the page says so
    expect(page.locator("#switch-result")).to_contain_text("Retraining cat-20261121000000 on the same files")
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:test-train"
    (execution,) = boto3.client("stepfunctions", region_name=REGION).list_executions(stateMachineArn=machine)[
        "executions"
    ]
    assert execution["name"] == "cat-20261121000000_retrain_1"
    assert [c for c in local_api.data_calls() if c[0] == "POST"] == [
        ("POST", "/models/cat-20261121000000/retrain", KEY)
    ]
    # And after the refresh the model is training, with no Retry button
    expect(page.locator('#models tr[data-model="cat-20261121000000"] td').nth(1)).to_have_text("training")
    expect(page.get_by_role("button", name=re.compile(r"^Retry training"))).to_have_count(0)
    assert page.errors == []
