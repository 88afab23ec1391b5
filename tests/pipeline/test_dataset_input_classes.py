"""Classes of odd input the dataset rules must answer clearly (issue 10): numbers of any size or
form, text that is not valid Unicode, Windows line ends, cut-off images, near-miss file names,
messages that read right, URL-encoded event keys; and a property test that the rules never raise."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dreambooth_shared import dataset_rules as rules
from tests.pipeline.conftest import jpeg_bytes, png_bytes
from tests.pipeline.test_dataset_rules import DEFAULTS, good_images, judge


def whole(name: str, data: bytes) -> rules.DatasetFile:
    """A file as the pipeline reads it: first and last bytes."""
    return rules.DatasetFile(
        name=name, size=len(data), header=data[: rules.HEADER_BYTES], tail=data[-rules.TAIL_BYTES :]
    )


def info_text(text: str) -> bytes:
    return text.encode("utf-8")


# ---- 1. numbers of any size or form ----


@pytest.mark.parametrize(
    "literal, rendered",
    [
        ("300.0", "300"),
        ("3e2", "300"),
        ("3.00E+2", "300"),
        ("300", "300"),
        ('"300.0"', "300"),
    ],
)
def test_whole_numbers_written_as_decimals_or_exponents_are_accepted(literal, rendered):
    verdict = judge(good_images(), info_text('{"max_steps": %s}' % literal))
    assert verdict.valid, verdict.reason
    assert verdict.hyperparameters["max_steps"] == rendered


@pytest.mark.parametrize(
    "literal",
    [
        "9" * 5000,  # more digits than Python's int() takes from text
        "1" + "0" * 400,  # too large for a float
        "1e999999999",  # an exponent no float or int can hold
        "-" + "9" * 4400,
        "1" + "0" * 30 + ".5",
    ],
    ids=["5000-digits", "401-digits", "huge-exponent", "minus-4400-digits", "31-digit-decimal"],
)
def test_numbers_too_large_for_int_or_float_are_refused_naming_the_field(literal):
    verdict = judge(good_images(), info_text('{"max_steps": %s, "learning_rate": %s}' % (literal, literal)))
    assert not verdict.valid
    assert "dataset_info.json: hyperparameter max_steps=" in verdict.reason
    assert "expected a whole number from 1 to 5000" in verdict.reason
    assert "hyperparameter learning_rate=" in verdict.reason
    assert len(verdict.reason) < 1000  # a 5000-digit literal is shown cut, not in full


def test_tiny_and_precise_floats_are_kept_in_range_exactly():
    verdict = judge(good_images(), info_text('{"learning_rate": 1e-999999, "adam_weight_decay": 0.%s1}' % ("0" * 3000)))
    assert "learning_rate=1E-999999 is not allowed" in verdict.reason
    ok = judge(good_images(), info_text('{"learning_rate": 0.000002000000000000000000000001}'))
    assert ok.valid and ok.hyperparameters["learning_rate"] == "2e-06"


def test_nan_infinity_and_deep_nesting_are_refused_as_invalid_json():
    assert "NaN is not a JSON number" in judge(good_images(), b'{"learning_rate": NaN}').reason
    assert "Infinity is not a JSON number" in judge(good_images(), b'{"max_steps": -Infinity}').reason
    deep = b'{"hyperparameters": ' + b"[" * 30000 + b"]" * 30000 + b"}"
    verdict = judge(good_images(), deep)
    assert not verdict.valid and "dataset_info.json" in verdict.reason


def test_integer_rule_ranges_read_as_whole_numbers():
    assert "from 0 to 2147483647" in judge(good_images(), {"seed": -1}).reason


# ---- 2. text of any form ----


def test_windows_line_ends_in_prompts_read_like_newlines():
    crlf = judge(good_images(), info_text('{"instance_prompt": "a photo of\\r\\nsks dog\\r"}'))
    lf = judge(good_images(), info_text('{"instance_prompt": "a photo of\\nsks dog"}'))
    assert crlf.valid, crlf.reason
    assert crlf.instance_prompt == lf.instance_prompt == "a photo of sks dog"


def test_a_file_saved_with_windows_line_ends_is_read():
    text = '{\r\n  "instance_prompt": "a photo of sks dog",\r\n  "max_steps": 300\r\n}\r\n'
    verdict = judge(good_images(), text.encode())
    assert verdict.valid and verdict.hyperparameters["max_steps"] == "300"


@pytest.mark.parametrize("field", ["instance_prompt", "class_prompt"])
def test_lone_surrogates_are_refused_naming_the_field(field):
    verdict = judge(good_images(), info_text('{"%s": "a photo of sks dog \\ud83d"}' % field))
    assert not verdict.valid
    assert f"dataset_info.json: {field} is not valid Unicode (it holds a lone surrogate \\ud83d" in verdict.reason
    verdict.reason.encode("utf-8")  # what SNS and DynamoDB get is valid UTF-8


def test_lone_surrogates_in_names_and_values_of_hyperparameters_never_reach_a_message_raw():
    verdict = judge(good_images(), info_text('{"max_\\udc00steps": 1, "lr_scheduler": "\\ud800"}'))
    assert not verdict.valid
    assert "max_\\udc00steps" in verdict.reason and "lr_scheduler='\\ud800'" in verdict.reason
    verdict.reason.encode("utf-8")


def test_a_paired_surrogate_escape_is_a_normal_character():
    verdict = judge(good_images(), info_text('{"instance_prompt": "a photo of sks dog \\ud83d\\udc36"}'))
    assert verdict.valid and verdict.instance_prompt.endswith("\U0001f436")


def test_utf16_files_are_refused_with_the_fix():
    verdict = judge(good_images(), json.dumps({"instance_prompt": "a photo"}).encode("utf-16"))
    assert "dataset_info.json is not UTF-8 text: save it as UTF-8" in verdict.reason


# ---- 3. damaged images ----


def test_a_jpeg_cut_off_before_its_end_marker_is_refused_by_name():
    data = jpeg_bytes(600, 600)
    cut = data[: len(data) // 2]
    verdict = judge(good_images(3) + [whole("cut.jpg", cut)])
    assert not verdict.valid
    assert "cut.jpg: damaged JPEG: the file ends without the JPEG end marker FFD9" in verdict.reason
    assert judge(good_images(3) + [whole("fine.jpg", data)]).valid


def test_an_end_marker_of_an_embedded_thumbnail_does_not_count():
    data = jpeg_bytes(600, 600, exif_padding=2000)
    fake_thumbnail_end = data[:200] + b"\xff\xd9" + data[202:]
    cut = fake_thumbnail_end[: data.index(b"\xff\xc0") + 500]
    assert b"\xff\xd9" in cut[:300]
    assert "damaged JPEG" in judge(good_images(3) + [whole("cut.jpg", cut)]).reason


def test_trailing_camera_data_after_the_end_marker_is_accepted():
    data = jpeg_bytes(600, 600) + b"SEFT" + b"\x00" * 5000
    assert judge(good_images(3) + [whole("camera.jpg", data)]).valid


def test_a_png_without_iend_or_with_a_bad_checksum_is_refused_by_name():
    data = png_bytes(600, 600)
    assert judge(good_images(3) + [whole("fine.png", data)]).valid
    cut = judge(good_images(3) + [whole("cut.png", data[:-12])])
    assert "cut.png: damaged PNG: the file ends without its IEND chunk" in cut.reason
    corrupt = bytearray(data)
    corrupt[20] ^= 0x01  # a bit of the IHDR's width
    bad = judge(good_images(3) + [whole("corrupt.png", bytes(corrupt))])
    assert "corrupt.png: damaged PNG: chunk 'IHDR' fails its checksum" in bad.reason


def test_without_a_tail_read_the_end_is_not_judged():
    data = jpeg_bytes(600, 600)
    unread = rules.DatasetFile("old-cli.jpg", len(data) // 2, data[: len(data) // 2])
    assert judge(good_images(3) + [unread]).valid


# ---- 5. near-miss names ----


@pytest.mark.parametrize(
    "name",
    [
        "dataset-info.json",
        "Dataset_Info.JSON",
        "dataset_info.json.txt",
        "datasetinfo.json",
        "dataset_ifno.json",
        "dataset_info.jsn",
    ],
)
def test_near_miss_names_of_dataset_info_get_a_did_you_mean_hint(name):
    verdict = judge(good_images() + [rules.DatasetFile(name, 40)])
    assert verdict.valid
    assert (
        f"skipped {name}: did you mean dataset_info.json? Only a file named exactly that is read: rename it"
        in verdict.warnings
    )


def test_a_dataset_info_in_a_sub_folder_is_told_to_move_up():
    verdict = judge(good_images() + [rules.DatasetFile("raw/dataset_info.json", 40)])
    assert any(
        "raw/dataset_info.json: did you mean dataset_info.json in the dataset folder itself" in w
        for w in verdict.warnings
    )


@pytest.mark.parametrize("name", ["notes.txt", "._dataset_info.json", ".DS_Store", "data.json", "info.txt"])
def test_other_skipped_names_get_no_did_you_mean(name):
    assert "did you mean" not in " ".join(judge(good_images() + [rules.DatasetFile(name, 4)]).warnings)


# ---- 9. messages read right ----


@pytest.mark.parametrize(
    "size, text",
    [
        (20 * 1_048_576 + 1, "20,971,521 bytes is over the 20 MB (20,971,520 bytes) limit"),
        (20 * 1_048_576 + 40_000, "21,011,520 bytes is over the 20 MB (20,971,520 bytes) limit"),
        (int(20.06 * 1_048_576), "20.1 MB is over the 20 MB limit"),
        (30 * 1_048_576, "30.0 MB is over the 20 MB limit"),
    ],
)
def test_size_messages_never_say_a_size_equal_to_the_limit_is_over_it(size, text):
    message = rules.size_problem(size, 20 * 1_048_576)
    assert "20.0 MB is over" not in message
    assert message.startswith(text)
    assert "resize or re-export it smaller" in message  # the fix


def test_every_refusal_names_the_file_and_a_fix():
    files = [
        whole("cut.jpg", jpeg_bytes(600, 600)[:3000]),
        whole("tiny.png", png_bytes(100, 100)),
        rules.DatasetFile("big.jpg", 99 * 1_048_576),
        whole("text.jpg", b"hello"),
    ]
    verdict = judge(files, {"instance_prompt": "", "max_steps": 0, "colour": "red"})
    by_file = {reason.split(":")[0]: reason for reason in verdict.reasons}
    for name in ("cut.jpg", "tiny.png", "big.jpg", "text.jpg", "dataset_info.json"):
        assert name in by_file, verdict.reasons
    fixes = ("upload it again", "use a larger photo", "resize", "save it as", "write e.g.", "add .jpg or .png photos")
    for reason in verdict.reasons:
        assert any(fix in reason for fix in fixes) or "remove it" in reason or "change it" in reason, reason


# ---- 10. keys as the user wrote them ----


@pytest.mark.parametrize(
    "event_key, key",
    [
        ("datasets/dog/1.jpg", "datasets/dog/1.jpg"),
        ("datasets/my+dog/photo+1.jpg", "datasets/my dog/photo 1.jpg"),
        ("datasets/my%20dog/photo%201.jpg", "datasets/my dog/photo 1.jpg"),
        ("datasets/my dog/photo 1.jpg", "datasets/my dog/photo 1.jpg"),
        ("datasets/hund-%C3%BC/1.jpg", "datasets/hund-\u00fc/1.jpg"),
        ("datasets/hund-\u00fc/1.jpg", "datasets/hund-\u00fc/1.jpg"),
        ("datasets/dog/100%.jpg", "datasets/dog/100%.jpg"),
        ("datasets/dog/%FF.jpg", "datasets/dog/%FF.jpg"),  # not UTF-8 once decoded: taken as it is
    ],
)
def test_event_keys_are_read_in_both_forms(event_key, key):
    assert rules.key_from_event(event_key) == key


def test_the_dataset_of_a_key_is_the_same_in_both_forms():
    for raw in ("datasets/dog-2/my photo.jpg", "datasets/dog-2/a+b%c.jpg"):
        from urllib.parse import quote_plus

        encoded = quote_plus(raw, safe="/")
        assert rules.dataset_name_from_key(rules.key_from_event(encoded)) == "dog-2"
        assert rules.dataset_name_from_key(rules.key_from_event(raw)) == "dog-2"


# ---- 4. the snapshot is made of what would be trained on ----


def test_the_snapshot_hash_ignores_files_that_are_never_trained_on():
    assert not rules.is_training_file(".DS_Store") and not rules.is_training_file("notes.txt")
    assert not rules.is_training_file("raw/1.jpg") and not rules.is_training_file("dataset-info.json")
    assert rules.is_training_file("1.JPG") and rules.is_training_file("dataset_info.json")


def test_the_snapshot_hash_changes_with_the_configured_defaults():
    entries = [("datasets/d/1.jpg", "e1", 10)]
    assert rules.snapshot_hash(entries, "a") != rules.snapshot_hash(entries, "b")


# ---- 11. the rules never raise, whatever they are given ----

_names = st.one_of(
    st.sampled_from(
        [
            "a.jpg",
            "b.JPEG",
            "c.png",
            ".DS_Store",
            "notes.txt",
            "sub/d.jpg",
            "dataset-info.json",
            "Dataset_Info.JSON",
            "x/",
            "\u00fc.jpg",
            "e.jpg",
        ]
    ),
    st.text(min_size=1, max_size=30),
)
_headers = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([png_bytes(300, 300), jpeg_bytes(300, 300), jpeg_bytes(300, 300)[:400], png_bytes(40, 40)]),
)
_json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
        st.sampled_from(["\ud83d", "300.0", "1e999", "NaN", "true", "cosine"]),
    ),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)
_info_objects = st.dictionaries(
    st.sampled_from(
        sorted(rules.HYPERPARAMETER_RULES) + ["instance_prompt", "class_prompt", "hyperparameters", "other", "\udc00"]
    ),
    _json_values,
    max_size=6,
)
_number_literals = st.one_of(
    st.integers().map(str),
    st.sampled_from(["9" * 5000, "1e999999999", "300.0", "-0", "1" + "0" * 400, "0.%s1" % ("0" * 500)]),
)
_infos = st.one_of(
    st.none(),
    st.binary(max_size=200),
    _info_objects.map(lambda d: json.dumps(d).encode("utf-8", "surrogatepass")),
    st.tuples(st.sampled_from(sorted(rules.HYPERPARAMETER_RULES)), _number_literals).map(
        lambda pair: ('{"%s": %s}' % pair).encode()
    ),
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
)


@given(
    files=st.lists(
        st.builds(
            lambda name, size, header, tail: rules.DatasetFile(name, size, header, tail),
            _names,
            st.integers(0, 2**40),
            _headers,
            st.one_of(st.none(), st.binary(max_size=64)),
        ),
        max_size=8,
    ),
    info=_infos,
    instance_type=st.sampled_from(["ml.g4dn.2xlarge", "ml.g5.2xlarge", "weird"]),
    dataset=st.one_of(st.just("doppler"), st.text(max_size=40)),
)
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_rules_never_raise_and_always_answer_in_valid_utf8(files, info, instance_type, dataset):
    verdict = rules.evaluate(
        dataset,
        files,
        read_info=(lambda: info) if info is not None else None,
        default_instance_prompt="a photo of sks {dataset}",
        default_class_prompt="",
        default_hyperparameters=DEFAULTS,
        training_instance_type=instance_type,
    )
    assert verdict.valid == (not verdict.reasons)
    for text in verdict.reasons + verdict.warnings:
        text.encode("utf-8")
    json.dumps(verdict.hyperparameters).encode("utf-8")
