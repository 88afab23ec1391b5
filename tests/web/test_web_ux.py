"""The web page on a phone and a desktop, prompt help and what can be done with results, in Chromium
against the real API handler (moto behind it). Also makes the README's two screenshots."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image, ImageChops, ImageStat
from playwright.sync_api import expect

from tests.api.conftest import create_endpoint, jumpstart_answer
from tests.conftest import ROOT
from tests.web.conftest import PHONE, VIEWPORT
from tests.web.test_web_page import COLOURS, MODEL, jpeg, save_key

PHRASE = "a photo of a Doppler dog"  # the harness's live model's instance prompt
DOCS_IMG = ROOT / "docs" / "img"
# Frozen page clock for the README's screenshots, so they differ only when the page does.
SCREENSHOT_TIME = "2026-11-25T10:30:00Z"
# Controls that must be on screen and usable once a key is saved, a model is live and a
# generation of two images is in the gallery.
CONTROLS = [
    ("button", "Forget key"),
    ("button", "Insert phrase"),
    ("textbox", "Prompt"),
    ("textbox", "Negative prompt (optional)"),
    ("combobox", "Images"),
    ("combobox", "Size (width × height)"),
    ("spinbutton", "Steps"),
    ("spinbutton", "Guidance"),
    ("spinbutton", "Seed (empty: random)"),
    ("button", "Generate"),
    ("button", "Upload and train"),
    ("textbox", "Dataset name (letters, digits, hyphens)"),
    ("textbox", "Prompt phrase (a rare word and the kind of thing)"),
    ("textbox", "Class prompt (optional)"),
    ("button", "Refresh"),
    ("button", "Make cat-20261121000000 live"),
    ("button", f"Prompt idea: {PHRASE} on the sea"),
    ("button", f"Prompt idea: {PHRASE} with a hat"),
    ("button", f"Prompt idea: {PHRASE} with Donald Trump"),
]


def populated(harness, local_api, page, *, frozen: bool = False, monkeypatch=None):
    """Key saved, a live model, a retired one, one training, and a generation of two images.

    `frozen`: the page's clock and the API's stand still at SCREENSHOT_TIME (times shown are fixed)."""
    harness.live_model(MODEL)
    harness.put_model("cat-20261121000000", status="retired")
    harness.put_model("cow-20261122000000", status="training")
    create_endpoint(MODEL)
    harness.queue_results(*(jumpstart_answer(jpeg(c)) for c in COLOURS))
    if frozen:
        from datetime import datetime

        page.clock.set_fixed_time(SCREENSHOT_TIME)
        fixed = datetime.fromisoformat(SCREENSHOT_TIME.replace("Z", "+00:00")).timestamp()
        monkeypatch.setattr(harness.api_module.generations, "clock", lambda: fixed)
        monkeypatch.setattr(harness.results_module.results, "clock", lambda: fixed + 12.5)
    page.goto(local_api.url)
    save_key(page)
    expect(page.locator("#phrase")).to_have_text(PHRASE)
    page.get_by_label("Prompt", exact=True).fill(f"{PHRASE} on the sea")
    page.get_by_label("Seed (empty: random)").fill("42")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#progress")).to_have_text("Done: 2 image(s).")
    expect(page.locator("article.generation img").nth(1)).to_have_js_property("naturalWidth", 64)


def no_horizontal_scroll(page) -> None:
    widths = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]")
    assert max(widths[:2]) <= widths[2], widths


def assert_usable(page, role: str, name: str) -> None:
    """On screen (not cut off at either side), enabled where it should be, and the topmost element
    at its centre, so a tap reaches it."""
    control = page.get_by_role(role, name=name, exact=True)
    expect(control).to_have_count(1)
    control.scroll_into_view_if_needed()
    expect(control).to_be_visible()
    box = control.bounding_box()
    width = page.evaluate("window.innerWidth")
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (name, box, width)
    assert box["width"] >= 24 and box["height"] >= 24, (name, box)  # big enough to tap
    hit = page.evaluate(
        "([x, y]) => { const e = document.elementFromPoint(x, y); return e && e.closest('button, input, select, textarea, a') ? e.closest('button, input, select, textarea, a').outerHTML : null }",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert hit is not None and hit == control.evaluate("e => e.outerHTML"), (name, hit)


@pytest.mark.parametrize("viewport", [PHONE, VIEWPORT], ids=["phone-390", "desktop-1280"])
def test_every_control_is_visible_and_usable_on_a_phone_and_a_desktop(harness, local_api, page, viewport):
    page.set_viewport_size(viewport)
    populated(harness, local_api, page)
    no_horizontal_scroll(page)
    for role, name in CONTROLS:
        assert_usable(page, role, name)
    for image_control in ("Download all 2 images of", "Reuse the settings of", "Remove “"):
        assert_usable(
            page, "button", page.locator(f'button[aria-label^="{image_control}"]').get_attribute("aria-label")
        )
    for link in page.locator("figcaption a.button").all():
        assert_usable(page, "link", link.get_attribute("aria-label"))
    assert page.errors == []


@pytest.mark.parametrize("width", [360, 414])
def test_no_horizontal_scroll_on_narrow_phones(harness, local_api, page, width):
    page.set_viewport_size({"width": width, "height": 800})
    populated(harness, local_api, page)
    no_horizontal_scroll(page)
    assert_usable(page, "button", "Forget key")  # cut off at 390 px before
    expect(page.locator("#endpoint-state")).to_be_visible()


def test_prompt_help_shows_the_live_phrase_inserts_it_and_fills_presets(harness, local_api, page):
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    page.goto(local_api.url)
    save_key(page)
    prompt = page.get_by_label("Prompt", exact=True)
    # The live model's phrase at the top, and in the placeholder
    expect(page.locator("#phrase")).to_have_text(PHRASE)
    expect(prompt).to_have_attribute("placeholder", f"{PHRASE} on the beach")
    # Inserted with one click where the cursor is
    prompt.fill("watercolour of")
    page.get_by_role("button", name="Insert phrase").click()
    expect(prompt).to_have_value(f"watercolour of {PHRASE}")
    # Presets from the original story, filled around the phrase
    for preset in ("on the sea", "with a hat", "with Donald Trump", "in the snow"):
        page.get_by_role("button", name=f"Prompt idea: {PHRASE} {preset}").click()
        expect(prompt).to_have_value(f"{PHRASE} {preset}")
    assert page.errors == []


def test_generate_is_disabled_with_a_hint_while_no_model_is_live(harness, local_api, page):
    page.goto(local_api.url)
    save_key(page)
    expect(page.locator("#generate-hint")).to_have_text(
        "No model is live yet: train one below (Train a new model), then generate."
    )
    expect(page.get_by_role("button", name="Generate")).to_be_disabled()
    expect(page.locator("#phrase-box")).to_be_hidden()
    # Once a model is live, Refresh enables it
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    page.get_by_role("button", name="Refresh").click()
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    expect(page.locator("#generate-hint")).to_be_hidden()


def test_images_download_under_stable_names_one_by_one_or_all_at_once(harness, local_api, page):
    populated(harness, local_api, page)
    names = [f"a-photo-of-a-doppler-dog-on-the-sea-seed{seed}.jpg" for seed in (42, 43)]
    links = page.locator("figcaption a.button")
    expect(links).to_have_count(2)
    for link, name in zip(links.all(), names):
        expect(link).to_have_attribute("download", name)
        query = parse_qs(urlparse(link.get_attribute("href")).query)
        assert query["response-content-disposition"] == [f'attachment; filename="{name}"']
    # One image: saved under its name, with the image's bytes
    with page.expect_download() as first:
        links.first.click()
    assert first.value.suggested_filename == names[0]
    assert Path(first.value.path()).read_bytes() == jpeg(COLOURS[0])
    # All of them at once: one zip file holding both images under their names
    with page.expect_download() as everything:
        page.get_by_role("button", name=f"Download all 2 images of “{PHRASE} on the sea” as one zip file").click()
    assert everything.value.suggested_filename == "a-photo-of-a-doppler-dog-on-the-sea-seed42-43.zip"
    with zipfile.ZipFile(everything.value.path()) as archive:
        assert archive.testzip() is None  # every CRC right
        assert archive.namelist() == names
        assert [archive.read(n) for n in names] == [jpeg(c) for c in COLOURS]
    assert page.errors == []


def test_reuse_these_settings_refills_the_form_and_remove_forgets_the_entry(harness, local_api, page):
    populated(harness, local_api, page)
    card = page.locator("article.generation")
    for field in ("Prompt", "Seed (empty: random)", "Steps"):
        page.get_by_label(field, exact=True).fill("")
    page.get_by_label("Images", exact=True).select_option("1")
    card.get_by_role("button", name=f"Reuse the settings of “{PHRASE} on the sea”").click()
    expect(page.get_by_label("Prompt", exact=True)).to_have_value(f"{PHRASE} on the sea")
    expect(page.get_by_label("Seed (empty: random)")).to_have_value("42")
    expect(page.get_by_label("Steps")).to_have_value("50")
    expect(page.get_by_label("Images", exact=True)).to_have_value("2")

    card.get_by_role("button", name=f"Remove “{PHRASE} on the sea” from this page's history").click()
    expect(card).to_have_count(0)
    expect(page.locator("#gallery-empty")).to_be_visible()
    assert json.loads(page.evaluate("localStorage.getItem('dreambooth.generations')")) == []
    page.reload()
    expect(page.locator("#key-saved")).to_be_visible()
    expect(page.locator("article.generation")).to_have_count(0)


def without_waiting_on_the_wall_clock(generations, monkeypatch) -> None:
    """POST /generations waits up to MAX_WAIT_SECONDS (20 s here) for SageMaker's answer, polling
    the table; here each of its sleeps moves its clock on instead, so that wait passes at once and
    the answer (and every time it records) is the one it gives after waiting it out."""
    slept = [0.0]
    monkeypatch.setattr(generations, "clock", lambda: time.time() + slept[0])
    monkeypatch.setattr(generations, "sleep", lambda seconds: slept.__setitem__(0, slept[0] + seconds))


def test_a_queued_generation_says_why_it_waits_and_about_how_long(harness, local_api, page, monkeypatch):
    harness.live_model(MODEL)
    create_endpoint(MODEL)
    harness.mode = "defer"  # sent to SageMaker, not answered yet
    without_waiting_on_the_wall_clock(harness.api_module.generations, monkeypatch)
    page.clock.install()
    page.goto(local_api.url)
    save_key(page)
    page.get_by_label("Prompt", exact=True).fill(f"{PHRASE} with a hat")
    page.get_by_label("Images", exact=True).select_option("3")
    page.get_by_role("button", name="Generate").click()
    card = page.locator("article.generation")
    expect(card).to_have_attribute("data-status", "queued", timeout=30_000)
    text = "Queued: at SageMaker: running, or waiting for a free instance, then about 45 s for 3 image(s)."
    expect(card.locator(".state")).to_have_text(text)
    expect(page.locator("#progress")).to_have_text(text)
    harness.queue_results(*(jumpstart_answer(jpeg(COLOURS[0])) for _ in range(3)))
    harness.answer_deferred()
    page.clock.run_for(2_000)  # the page looks again every 2 s (not on the wall clock here)
    expect(card).to_have_attribute("data-status", "succeeded", timeout=15_000)


# ---- the README's screenshots ------------------------------------------------------------------------


def _differs(committed: Path, fresh: Path) -> float:
    """Mean absolute pixel difference, 0-255 (fonts and anti-aliasing vary a little between runs)."""
    with Image.open(committed) as old, Image.open(fresh) as new:
        if old.size != new.size:
            return 255.0
        return max(ImageStat.Stat(ImageChops.difference(old.convert("RGB"), new.convert("RGB"))).mean)


@pytest.mark.parametrize("name, viewport", [("web-desktop", VIEWPORT), ("web-phone", PHONE)])
def test_the_readme_screenshots_are_made_from_the_emulator_and_current(
    harness, local_api, page, name, viewport, tmp_path, monkeypatch
):
    page.set_viewport_size(viewport)
    populated(harness, local_api, page, frozen=True, monkeypatch=monkeypatch)
    page.locator("#prompt").fill("")
    page.locator("#prompt").blur()
    if viewport == PHONE:  # on a phone the gallery follows the form: show the form's end and the images
        page.locator("#gallery-section").evaluate("e => e.scrollIntoView({block: 'end'})")
    else:
        page.evaluate("window.scrollTo(0, 0)")
    fresh = tmp_path / f"{name}.png"
    page.screenshot(path=str(fresh), full_page=False)
    committed = DOCS_IMG / f"{name}.png"
    assert f"docs/img/{name}.png" in (ROOT / "README.md").read_text()
    if not committed.exists() or _differs(committed, fresh) > 2.0:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        committed.write_bytes(fresh.read_bytes())
        pytest.fail(f"docs/img/{name}.png was missing or stale: regenerated from the emulator, commit it")
    # The gallery's images are in the picture (not a blank or unstyled page)
    with Image.open(committed) as shot:
        pixels = list(shot.convert("RGB").get_flattened_data())
    assert sum(all(abs(a - b) <= 24 for a, b in zip(p, COLOURS[0])) for p in pixels) > 200
    assert max(ImageStat.Stat(Image.open(committed).convert("RGB")).stddev) > 10
