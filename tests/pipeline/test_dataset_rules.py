"""The dataset rules: images judged by content, prompts, overrides, limits."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dreambooth_shared import dataset_rules as rules
from tests.pipeline.conftest import jpeg_bytes, png_bytes

DEFAULTS = {"max_steps": "400", "learning_rate": "2e-06", "with_prior_preservation": "False", "seed": "0"}


def judge(
    files,
    info=None,
    *,
    instance_type="ml.g4dn.2xlarge",
    limits=rules.Limits(),  # noqa: B008 (frozen)
    dataset="doppler",
    default_prompt="a photo of sks {dataset}",
    default_class="",
):
    info_bytes = json.dumps(info).encode() if isinstance(info, dict) else info
    return rules.evaluate(
        dataset,
        files,
        read_info=(lambda: info_bytes) if info_bytes is not None else None,
        default_instance_prompt=default_prompt,
        default_class_prompt=default_class,
        default_hyperparameters=DEFAULTS,
        training_instance_type=instance_type,
        limits=limits,
    )


def image_file(name: str, data: bytes) -> rules.DatasetFile:
    return rules.DatasetFile(name=name, size=len(data), header=data[: rules.HEADER_BYTES])


def good_images(count: int = 5) -> list[rules.DatasetFile]:
    return [image_file(f"dog{i}.jpg", jpeg_bytes(512 + i, 600)) for i in range(count)]


# ---- images by content ----


def test_png_dimensions_come_from_the_ihdr_chunk():
    assert rules.image_info(png_bytes(640, 480)) == rules.ImageInfo("png", 640, 480)


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_dimensions_come_from_the_frame_header(progressive):
    assert rules.image_info(jpeg_bytes(800, 600, progressive=progressive)) == rules.ImageInfo("jpeg", 800, 600)


def test_jpeg_frame_header_is_found_behind_a_large_exif_block():
    data = jpeg_bytes(700, 500, exif_padding=60_000)
    assert data.index(b"\xff\xc0") > 60_000
    assert rules.image_info(data[: rules.HEADER_BYTES]) == rules.ImageInfo("jpeg", 700, 500)


def test_a_text_file_named_like_a_photo_is_refused_by_content():
    verdict = judge(good_images(3) + [image_file("holiday.jpg", b"this is not a picture at all")])
    assert not verdict.valid
    assert "holiday.jpg: not a PNG or JPEG image" in verdict.reason


def test_a_png_named_jpg_is_accepted_because_content_decides():
    verdict = judge(good_images(2) + [image_file("really-a-png.jpg", png_bytes())])
    assert verdict.valid, verdict.reason
    assert verdict.image_count == 3


def test_truncated_jpeg_without_frame_header_is_refused():
    data = jpeg_bytes(600, 600)
    cut = data[: data.index(b"\xff\xc0")]
    with pytest.raises(rules.DatasetError, match="dimensions not found"):
        rules.image_info(cut)


@given(st.binary(max_size=2048))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_crash_the_parser(data):
    try:
        info = rules.image_info(data)
    except rules.DatasetError:
        return
    assert info.format in ("png", "jpeg") and info.width >= 0 and info.height >= 0


# ---- files and limits ----


def test_unsupported_and_hidden_files_are_skipped_with_a_warning():
    files = good_images(3) + [
        rules.DatasetFile(".DS_Store", 6148),
        rules.DatasetFile("notes.txt", 10),
        rules.DatasetFile("nested/dog.jpg", 100),
    ]
    verdict = judge(files)
    assert verdict.valid, verdict.reason
    assert verdict.image_count == 3
    assert [w.split(":")[0] for w in verdict.warnings] == [
        "skipped .DS_Store",
        "skipped nested/dog.jpg",
        "skipped notes.txt",
    ]


def test_too_few_images():
    verdict = judge(good_images(2))
    assert not verdict.valid and "2 usable images; at least 3 are needed" in verdict.reason


def test_too_many_images():
    verdict = judge(good_images(4), limits=rules.Limits(min_images=1, max_images=3))
    assert not verdict.valid and "4 images; at most 3 are allowed" in verdict.reason


def test_images_too_large_in_bytes_or_too_small_in_pixels():
    big = rules.DatasetFile("huge.png", 30 * 1024 * 1024)
    tiny = image_file("tiny.png", png_bytes(100, 900))
    verdict = judge(good_images(3) + [big, tiny])
    assert not verdict.valid
    assert "huge.png: 30.0 MB is over the 20 MB limit" in verdict.reason
    assert "tiny.png: 100x900 is too small" in verdict.reason


def test_every_problem_is_reported_at_once():
    verdict = judge([image_file("a.jpg", b"nope")], {"instance_prompt": "", "max_steps": 0})
    for part in ("a.jpg: not a PNG or JPEG", "0 usable images", "instance_prompt must be", "max_steps=0"):
        assert part in verdict.reason


# ---- prompts ----


def test_without_dataset_info_the_configured_default_prompt_is_used():
    verdict = judge(good_images())
    assert verdict.valid and verdict.instance_prompt == "a photo of sks doppler"
    assert verdict.class_prompt == ""


def test_dataset_info_prompts_win_and_are_normalised():
    verdict = judge(good_images(), {"instance_prompt": "a  photo of\nDoppler dog", "class_prompt": "a photo of a dog"})
    assert verdict.valid
    assert (verdict.instance_prompt, verdict.class_prompt) == ("a photo of Doppler dog", "a photo of a dog")


@pytest.mark.parametrize(
    "prompt, message",
    [
        ("", "must be 3-300 characters"),
        ("x" * 301, "must be 3-300 characters"),
        (42, "must be text"),
        ("1234 5678", "must contain words"),
        ("a photo\x00of x", "control characters"),
    ],
)
def test_insane_prompts_are_refused(prompt, message):
    verdict = judge(good_images(), {"instance_prompt": prompt})
    assert not verdict.valid and message in verdict.reason


def test_dataset_info_must_be_a_json_object():
    assert "not valid JSON" in judge(good_images(), b"{nope").reason
    assert "must hold a JSON object" in judge(good_images(), b"[1, 2]").reason


# ---- hyperparameter overrides ----


def test_allowed_overrides_are_merged_over_the_defaults_as_strings():
    verdict = judge(
        good_images(),
        {
            "instance_prompt": "a photo of Doppler dog",
            "hyperparameters": {"max_steps": 250, "learning_rate": 1e-6, "seed": "7"},
            "center_crop": True,
        },
    )
    assert verdict.valid, verdict.reason
    assert verdict.hyperparameters == {
        "max_steps": "250",
        "learning_rate": "1e-06",
        "seed": "7",
        "with_prior_preservation": "False",
        "center_crop": "True",
    }


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"max_steps": 0}, "max_steps=0 is not allowed: expected a whole number from 1 to 5000"),
        ({"max_steps": 2.5}, "max_steps=2.5"),
        ({"learning_rate": 0.5}, "learning_rate=0.5"),
        ({"learning_rate": "NaN"}, "learning_rate='NaN'"),
        ({"batch_size": True}, "batch_size=true"),
        ({"lr_scheduler": "exotic"}, "expected one of constant"),
        ({"sagemaker_program": "evil.py"}, "'sagemaker_program' cannot be overridden"),
        ({"with_prior_preservation": "maybe"}, "expected true or false"),
    ],
)
def test_overrides_outside_the_allow_list_or_range_are_refused(overrides, message):
    verdict = judge(good_images(), {"hyperparameters": overrides})
    assert not verdict.valid and message in verdict.reason


def test_prior_preservation_needs_a_class_prompt_and_a_bigger_gpu():
    verdict = judge(good_images(), {"with_prior_preservation": True})
    assert "needs a class_prompt" in verdict.reason
    assert "runs out of GPU memory on ml.g4dn.2xlarge" in verdict.reason
    ok = judge(
        good_images(),
        {"with_prior_preservation": True, "class_prompt": "a photo of a dog"},
        instance_type="ml.g5.2xlarge",
    )
    assert ok.valid, ok.reason


# ---- names and snapshots ----


@pytest.mark.parametrize(
    "key, name",
    [
        ("datasets/doppler/a.jpg", "doppler"),
        ("datasets/doppler/sub/a.jpg", "doppler"),
        ("datasets/a.jpg", None),
        ("datasets/doppler/", None),
        ("models/doppler/a.jpg", None),
    ],
)
def test_dataset_name_from_key(key, name):
    assert rules.dataset_name_from_key(key) == name


@pytest.mark.parametrize(
    "name, ok",
    [
        ("doppler", True),
        ("My-Dog-2", True),
        ("a", True),
        ("x" * 32, True),
        ("x" * 33, False),
        ("-dog", False),
        ("dog_1", False),
        ("my dog", False),
        ("_pipeline", False),
    ],
)
def test_dataset_names(name, ok):
    assert (rules.dataset_name_problem(name) is None) == ok


def test_snapshot_hash_depends_on_content_not_order():
    a = [("datasets/d/1.jpg", "e1", 10), ("datasets/d/2.jpg", "e2", 20)]
    assert rules.snapshot_hash(a) == rules.snapshot_hash(reversed(a))
    assert rules.snapshot_hash(a) != rules.snapshot_hash([a[0], ("datasets/d/2.jpg", "e3", 20)])
