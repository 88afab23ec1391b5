"""What makes a dataset trainable: pure rules, no AWS calls, reusable by the CLI.

A dataset is the set of files under `datasets/<name>/`. Images (PNG or JPEG) are judged by their
content, not by their extension: the first bytes of each file are parsed for the PNG IHDR chunk or
the JPEG start-of-frame marker, which give the dimensions without decoding the picture, and the
last bytes for the end marker (JPEG `FFD9`, PNG `IEND`), which a cut-off upload lacks. Anything
else is skipped with a warning (a near-miss of `dataset_info.json` with a "did you mean" hint), and
`dataset_info.json` supplies prompts and hyperparameter overrides from an allow-list with checked
ranges. Every refusal names the file, the rule and the fix; nothing here raises for bad input.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from dreambooth_shared.contract import DATASETS_PREFIX, UPLOADS_PREFIX, PipelineEnv

DATASET_INFO_FILE = "dataset_info.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Enough to reach a JPEG's start-of-frame marker behind a large EXIF/ICC block.
HEADER_BYTES = 256 * 1024
# The end of each image is read too (a ranged GET): enough to hold the end marker behind the
# trailers some cameras append after a JPEG's FFD9.
TAIL_BYTES = 64 * 1024
MAX_DATASET_INFO_BYTES = 64 * 1024


def upload_prefix(dataset: str, token: str) -> str:
    return f"{UPLOADS_PREFIX}{dataset}/{token}/"


def new_upload_token() -> str:
    """Unique per upload, readable: when it was started (UTC), then random, e.g. 20261201T093000Z-1f2e3d4c."""
    import secrets
    import time

    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


# Dataset names become part of SageMaker job, model and endpoint-config names
# (letters, digits, hyphens; at most 63 characters with the 15-character version suffix).
DATASET_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?$")
DATASET_NAME_RULE = "1-32 letters, digits or hyphens, starting and ending with a letter or digit"

# SageMaker downloads the training channel into files of the same names: a name longer than a
# Linux file name may be (255 bytes) cannot be written there.
MAX_FILE_NAME_BYTES = 255

MIN_PROMPT_CHARS = 3
MAX_PROMPT_CHARS = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class DatasetError(ValueError):
    """A dataset cannot be trained; the message says why in words a user can act on."""


@dataclass(frozen=True)
class Limits:
    min_images: int = 3
    max_images: int = 100
    max_image_bytes: int = 20 * 1024 * 1024
    min_side_px: int = 256
    max_side_px: int = 8192


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    # Where the picture itself starts (a JPEG's frame header): an end marker before it belongs to
    # an embedded thumbnail, not to the picture.
    body_offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class DatasetFile:
    """One object of the dataset: its key relative to the dataset folder, size, first and last bytes.

    `tail` holds the last bytes (at most TAIL_BYTES; the whole file when it is shorter); None when
    they were not read, and then the end of the file is not checked.
    """

    name: str
    size: int
    header: bytes = b""
    tail: Optional[bytes] = None


@dataclass
class Verdict:
    valid: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    instance_prompt: str = ""
    class_prompt: str = ""
    hyperparameters: dict[str, str] = field(default_factory=dict)
    image_count: int = 0
    image_names: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


# ---- text as messages can carry it ----------------------------------------------------------

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_CHARS = 40


def safe_text(text: str) -> str:
    """Text every sink accepts (SNS, DynamoDB, logs want valid UTF-8): lone surrogates as \\udXXX."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def unicode_problem(text: str) -> Optional[str]:
    """Why `text` is not valid Unicode (JSON lets "\\ud83d" stand alone), or None."""
    found = _LONE_SURROGATE.search(text)
    if found is None:
        return None
    return f"it holds a lone surrogate \\u{ord(found.group()):04x} at character {found.start() + 1}"


def shown(value: Any) -> str:
    """A value of dataset_info.json as the user wrote it, cut when long, safe for every sink."""
    if isinstance(value, Decimal):
        text = str(value)  # the literal's own digits: 300.0 stays 300.0
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, dict):
        text = "a JSON object"
    elif isinstance(value, list):
        text = "a JSON list"
    else:
        text = repr(value)
    if len(text) > _SHOWN_CHARS:
        text = f"{text[: _SHOWN_CHARS // 2]}... ({len(text)} characters)"
    return safe_text(text)


def load_json(data: bytes, what: str = DATASET_INFO_FILE) -> Any:
    """Strict JSON with every number kept exactly as a Decimal (no float overflow, no digit limit)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{what} is not UTF-8 text: save it as UTF-8") from None
    try:
        return json.loads(text, parse_int=Decimal, parse_float=Decimal, parse_constant=_not_a_number)
    except RecursionError:
        raise DatasetError(f"{what} is nested too deeply to be a dataset_info.json: keep it one flat object") from None
    except ValueError as error:
        raise DatasetError(
            f"{what} is not valid JSON ({safe_text(str(error))[:200]}): fix it, e.g. "
            '{"instance_prompt": "a photo of sks dog"}'
        ) from None


def _not_a_number(literal: str) -> Any:
    raise ValueError(f"{literal} is not a JSON number")


def dataset_name_from_key(key: str) -> Optional[str]:
    """`datasets/<name>/...` -> `<name>`; None for keys outside a dataset folder."""
    if not key.startswith(DATASETS_PREFIX):
        return None
    rest = key[len(DATASETS_PREFIX) :]
    name, slash, file_part = rest.partition("/")
    if not slash or not name or not file_part:
        return None
    return name


_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def key_from_event(key: str) -> str:
    """An S3 key from an EventBridge event as the user wrote it.

    Whether EventBridge URL-encodes `detail.object.key` is not documented (S3's own notifications
    do, with `+` for spaces; Powertools decodes with unquote_plus; moto does not encode). A key
    with a space, or with neither a %XX escape nor a `+`, is taken as it is; otherwise it is
    decoded. Only a raw key holding `+` or `%XX` but no space is read wrongly (a `+` shown as a
    space in a message); dataset names can hold neither, so the dataset a key belongs to is right
    in both forms.
    """
    if " " in key or not (_PERCENT_ESCAPE.search(key) or "+" in key):
        return key
    from urllib.parse import unquote_plus

    try:
        return unquote_plus(key, errors="strict")
    except UnicodeDecodeError:
        return key


def is_folder_placeholder(key: str) -> bool:
    """A console's "Create folder" object (`datasets/dog/`, zero bytes): never a dataset file."""
    return key.endswith("/")


def dataset_name_problem(name: str) -> Optional[str]:
    if DATASET_NAME.match(name):
        return None
    return (
        f"folder name {shown(name)} is not allowed: use {DATASET_NAME_RULE}, "
        "and upload the files again under datasets/<that name>/"
    )


def check_dataset_name(name: str) -> None:
    problem = dataset_name_problem(name)
    if problem:
        raise DatasetError(problem)


# ---- images, judged by content -------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and (constant) CRC
_JPEG_END = b"\xff\xd9"
# JPEG start-of-frame markers that carry dimensions (not DHT C4, JPG C8, DAC CC).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_REEXPORT = "upload it again from the original, or open and re-save it as JPEG or PNG"


def image_info(header: bytes) -> ImageInfo:
    """Format and dimensions from a file's first bytes; DatasetError when it is no PNG/JPEG."""
    if header.startswith(_PNG_SIGNATURE):
        return _png_info(header)
    if header.startswith(b"\xff\xd8\xff"):
        return _jpeg_info(header)
    raise DatasetError(
        "not a PNG or JPEG image (content does not start with an image signature): "
        "save it as .jpg or .png, or remove it"
    )


def _png_info(data: bytes) -> ImageInfo:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise DatasetError(f"damaged PNG: no IHDR header; {_REEXPORT}")
    width, height = struct.unpack(">II", data[16:24])
    # Every chunk within the bytes read must carry its right CRC.
    position = 8
    while position + 12 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        end = position + 12 + length
        if length > 0x7FFFFFFF:
            raise DatasetError(f"damaged PNG: impossible chunk length; {_REEXPORT}")
        if end > len(data):
            break
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(data[position + 4 : end - 4]) != crc:
            chunk = data[position + 4 : position + 8].decode("latin-1")
            raise DatasetError(f"damaged PNG: chunk {chunk!r} fails its checksum; {_REEXPORT}")
        if data[position + 4 : position + 8] == b"IEND":
            break
        position = end
    return ImageInfo("png", width, height)


def _jpeg_info(data: bytes) -> ImageInfo:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise DatasetError(f"damaged JPEG: marker expected; {_REEXPORT}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        if marker in (0xD9, 0xDA):
            break  # end of image / start of scan before any frame header
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if length < 2:
            raise DatasetError(f"damaged JPEG: bad segment length; {_REEXPORT}")
        if marker in _JPEG_SOF:
            if position + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return ImageInfo("jpeg", width, height, body_offset=position)
        position += 2 + length
    raise DatasetError(
        f"JPEG dimensions not found in the first {HEADER_BYTES // 1024} KiB (damaged or unusual file); {_REEXPORT}"
    )


def _end_problem(file: DatasetFile, info: ImageInfo) -> Optional[str]:
    """Why the file's last bytes show it cut off, or None (also when they were not read)."""
    if file.tail is None:
        return None
    if info.format == "png":
        if _PNG_END not in file.tail:
            return f"damaged PNG: the file ends without its IEND chunk (cut off?); {_REEXPORT}"
        return None
    at = file.tail.rfind(_JPEG_END)
    if at < 0 or file.size - len(file.tail) + at < info.body_offset:
        return f"damaged JPEG: the file ends without the JPEG end marker FFD9 (cut off?); {_REEXPORT}"
    return None


_MB = 1_048_576


def size_problem(size: int, limit: int) -> Optional[str]:
    """ "30.0 MB is over the 20 MB limit ..."; in bytes when one decimal would not tell them apart."""
    if size <= limit:
        return None
    limit_text = f"{limit / _MB:g} MB"
    if float(f"{size / _MB:.1f}") > limit / _MB:
        size_text = f"{size / _MB:.1f} MB"
    else:
        size_text, limit_text = f"{size:,} bytes", f"{limit_text} ({limit:,} bytes)"
    return (
        f"{size_text} is over the {limit_text} limit for one image: resize or re-export it smaller "
        "(dreambooth upload --resize does this), or deploy with a larger maxImageMb"
    )


def check_image(file: DatasetFile, limits: Limits) -> ImageInfo:
    problem = size_problem(file.size, limits.max_image_bytes)
    if problem:
        raise DatasetError(problem)
    info = image_info(file.header)
    if info.width == 0 or info.height == 0:
        raise DatasetError(f"image has zero width or height; {_REEXPORT}")
    if min(info.width, info.height) < limits.min_side_px:
        raise DatasetError(
            f"{info.width}x{info.height} is too small: the shorter side must be at least {limits.min_side_px} px; "
            "use a larger photo"
        )
    if max(info.width, info.height) > limits.max_side_px:
        raise DatasetError(
            f"{info.width}x{info.height} is too large: the longer side must be at most {limits.max_side_px} px; "
            "resize it (dreambooth upload --resize does this)"
        )
    problem = _end_problem(file, info)
    if problem:
        raise DatasetError(problem)
    return info


# ---- prompts and hyperparameters -----------------------------------------------------------

PROMPT_EXAMPLE = '"a photo of sks dog"'


def check_prompt(field_name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise DatasetError(f"{field_name} must be text in quotes, not {shown(value)}: write e.g. {PROMPT_EXAMPLE}")
    problem = unicode_problem(value)
    if problem:
        raise DatasetError(f"{field_name} is not valid Unicode ({problem}): retype it")
    # Windows line ends (and old Mac ones) read like "\n".
    normalised = value.replace("\r\n", "\n").replace("\r", "\n")
    if _CONTROL.search(normalised.replace("\n", " ").replace("\t", " ")):
        raise DatasetError(f"{field_name} contains control characters: retype it as plain text")
    text = " ".join(normalised.split())
    if not MIN_PROMPT_CHARS <= len(text) <= MAX_PROMPT_CHARS:
        raise DatasetError(
            f"{field_name} must be {MIN_PROMPT_CHARS}-{MAX_PROMPT_CHARS} characters long "
            f"(it has {len(text)}): write e.g. {PROMPT_EXAMPLE}"
        )
    if not re.search(r"[^\W\d_]", text):
        raise DatasetError(f"{field_name} must contain words: write e.g. {PROMPT_EXAMPLE}")
    return text


def _number(value: Any) -> Optional[Decimal]:
    """A finite Decimal for a JSON number or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, Decimal):
            number = value
        elif isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, str) and len(value) <= MAX_DATASET_INFO_BYTES:
            number = Decimal(value.strip())
        else:
            return None
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


@dataclass(frozen=True)
class Rule:
    kind: type
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind is bool:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is int:
            return f"a whole number from {self.minimum} to {self.maximum}"
        return f"a number from {self.minimum:g} to {self.maximum:g}"

    def render(self, name: str, value: Any) -> str:
        """The value as the string SageMaker hyperparameters need; DatasetError when out of range."""
        problem = DatasetError(
            f"hyperparameter {name}={shown(value)} is not allowed: expected {self.describe()}; "
            "change it or leave it out to use the default"
        )
        if self.kind is bool:
            if isinstance(value, bool):
                return "True" if value else "False"
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                return "True" if value.strip().lower() == "true" else "False"
            raise problem
        if self.choices:
            if not isinstance(value, str) or value not in self.choices:
                raise problem
            return value
        number = _number(value)
        # Range first: a literal like 1e999999999 is never turned into a whole number.
        if number is None or not Decimal(repr(self.minimum)) <= number <= Decimal(repr(self.maximum)):
            raise problem
        if self.kind is int:
            if number != number.to_integral_value():
                raise problem
            return str(int(number))
        return repr(float(number))


# What a dataset_info.json may override. Anything else is refused, so a typo cannot silently
# fall back to a default, and nothing can change the training script or its inputs.
HYPERPARAMETER_RULES: Mapping[str, Rule] = {
    "max_steps": Rule(int, 1, 5000),
    "epochs": Rule(int, 1, 200),
    "learning_rate": Rule(float, 1e-8, 1e-3),
    "batch_size": Rule(int, 1, 8),
    "seed": Rule(int, 0, 2**31 - 1),
    "with_prior_preservation": Rule(bool),
    "num_class_images": Rule(int, 1, 1000),
    "prior_loss_weight": Rule(float, 0.0, 10.0),
    "center_crop": Rule(bool),
    "lr_scheduler": Rule(
        str, choices=("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
    ),
    "gradient_accumulation_steps": Rule(int, 1, 64),
    "max_grad_norm": Rule(float, 0.01, 100.0),
    "adam_weight_decay": Rule(float, 0.0, 1.0),
    "compute_fid": Rule(bool),
}

# Prior preservation runs out of GPU memory on the 16 GB T4 of g4dn instances (JumpStart notes).
_PRIOR_PRESERVATION_FAMILIES = ("g5", "g6", "g6e", "p4d", "p5")


def check_overrides(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise DatasetError('hyperparameters must be a JSON object, e.g. {"max_steps": 300}')
    problems, rendered = [], {}
    for name, value in raw.items():
        rule = HYPERPARAMETER_RULES.get(name)
        if rule is None:
            problems.append(
                f"hyperparameter {shown(name)} cannot be overridden: remove it (allowed: "
                f"{', '.join(sorted(HYPERPARAMETER_RULES))})"
            )
            continue
        try:
            rendered[name] = rule.render(name, value)
        except DatasetError as error:
            problems.append(str(error))
    if problems:
        raise DatasetError("; ".join(problems))
    return rendered


@dataclass(frozen=True)
class DatasetInfo:
    instance_prompt: Optional[str]
    class_prompt: Optional[str]
    overrides: dict[str, str]


_INFO_FIELDS = {"instance_prompt", "class_prompt", "hyperparameters"}


def parse_dataset_info(text: bytes) -> DatasetInfo:
    """Parse dataset_info.json. Overrides may sit under "hyperparameters" or at the top level.

    Each problem is named with the file and the field (one DatasetError holds them all)."""
    if len(text) > MAX_DATASET_INFO_BYTES:
        raise DatasetError(
            f"{DATASET_INFO_FILE} is larger than {MAX_DATASET_INFO_BYTES // 1024} KiB: "
            "keep only the prompts and hyperparameters in it"
        )
    data = load_json(text)
    if not isinstance(data, dict):
        raise DatasetError(
            f'{DATASET_INFO_FILE} must hold a JSON object, e.g. {{"instance_prompt": "a photo of sks dog"}}'
        )
    problems = []
    instance_prompt = class_prompt = None
    try:
        if "instance_prompt" in data:
            instance_prompt = check_prompt("instance_prompt", data["instance_prompt"])
    except DatasetError as error:
        problems.append(str(error))
    try:
        if data.get("class_prompt") not in (None, ""):
            class_prompt = check_prompt("class_prompt", data["class_prompt"])
    except DatasetError as error:
        problems.append(str(error))
    nested = data.get("hyperparameters")
    overrides_raw: dict[str, Any] = {}
    if isinstance(nested, dict):
        overrides_raw.update(nested)
    elif nested is not None:
        problems.append('hyperparameters must be a JSON object, e.g. {"max_steps": 300}')
    for key, value in data.items():
        if key not in _INFO_FIELDS:
            overrides_raw[key] = value
    overrides = {}
    try:
        overrides = check_overrides(overrides_raw)
    except DatasetError as error:
        problems.append(str(error))
    if problems:
        raise DatasetError("; ".join(f"{DATASET_INFO_FILE}: {problem}" for problem in problems))
    return DatasetInfo(instance_prompt, class_prompt, overrides)


# ---- the whole dataset ---------------------------------------------------------------------


def is_hidden_or_nested(name: str) -> bool:
    return "/" in name or name.startswith(".")


def is_training_file(name: str) -> bool:
    """Whether a file (name relative to the dataset folder) can be trained on or configures the
    training: what the snapshot that decides "already trained" is made of."""
    return name == DATASET_INFO_FILE or (not is_hidden_or_nested(name) and name.lower().endswith(IMAGE_SUFFIXES))


def info_file_hint(name: str) -> Optional[str]:
    """ "did you mean dataset_info.json?" for a near-miss name (dataset-info.json, Dataset_Info.JSON,
    dataset_info.json.txt, sub/dataset_info.json), else None."""
    import difflib

    base = name.rsplit("/", 1)[-1]
    if base.startswith("._") or name == DATASET_INFO_FILE:
        return None  # macOS resource forks are not misspellings
    letters = re.sub(r"[^a-z0-9]", "", base.lower())
    near = (
        letters.startswith("datasetinfo")
        or difflib.SequenceMatcher(None, base.lower(), DATASET_INFO_FILE).ratio() >= 0.85
    )
    if not near:
        return None
    if base == DATASET_INFO_FILE:
        return f"did you mean {DATASET_INFO_FILE} in the dataset folder itself? Only that one is read: move it up"
    return f"did you mean {DATASET_INFO_FILE}? Only a file named exactly that is read: rename it"


def skipped_reason(name: str) -> str:
    hint = info_file_hint(name)
    if hint:
        return hint
    if "/" in name:
        return "files in sub-folders are not used; move it into the dataset folder itself to train on it"
    if name.startswith("."):
        return "hidden files are not used"
    return "only .jpg, .jpeg and .png files are used"


def evaluate(
    dataset: str,
    files: Sequence[DatasetFile],
    *,
    read_info: Callable[[], bytes] | None,
    default_instance_prompt: str,
    default_class_prompt: str,
    default_hyperparameters: Mapping[str, str],
    training_instance_type: str,
    limits: Limits = Limits(),
) -> Verdict:
    """Judge a dataset. `files` holds every object but dataset_info.json (which `read_info` reads).

    Never raises for a bad dataset: every problem goes into `Verdict.reasons`, so one run reports
    all of them at once.
    """
    verdict = Verdict(valid=False)
    try:
        check_dataset_name(dataset)
    except DatasetError as error:
        verdict.reasons.append(str(error))

    info = DatasetInfo(None, None, {})
    if read_info is not None:
        try:
            info = parse_dataset_info(read_info())
        except DatasetError as error:
            verdict.reasons.append(str(error))

    image_count = 0
    for file in sorted(files, key=lambda f: f.name):
        if not is_training_file(file.name) or file.name == DATASET_INFO_FILE:
            verdict.warnings.append(f"skipped {file.name}: {skipped_reason(file.name)}")
            continue
        try:
            if len(file.name.encode("utf-8")) > MAX_FILE_NAME_BYTES:
                raise DatasetError(
                    f"the file name is longer than {MAX_FILE_NAME_BYTES} bytes, which the training "
                    "job cannot write to its disk: rename the file"
                )
            check_image(file, limits)
            image_count += 1
            verdict.image_names.append(file.name)
        except DatasetError as error:
            verdict.reasons.append(f"{file.name}: {error}")
    verdict.image_count = image_count
    folder = f"{DATASETS_PREFIX}{dataset}/"
    if image_count < limits.min_images:
        verdict.reasons.append(
            f"{image_count} usable images; at least {limits.min_images} are needed: add .jpg or .png photos to {folder}"
        )
    if image_count > limits.max_images:
        verdict.reasons.append(
            f"{image_count} images; at most {limits.max_images} are allowed: "
            f"remove some from {folder} (or deploy with a larger maxImages)"
        )

    try:
        verdict.instance_prompt = info.instance_prompt or check_prompt(
            "the default instance prompt (defaultInstancePrompt)", default_instance_prompt.replace("{dataset}", dataset)
        )
    except DatasetError as error:
        verdict.reasons.append(f"{error}; or give an instance_prompt in {DATASET_INFO_FILE}")
    verdict.class_prompt = info.class_prompt or (default_class_prompt or "").strip()

    hyperparameters = dict(default_hyperparameters)
    hyperparameters.update(info.overrides)
    verdict.hyperparameters = hyperparameters
    if hyperparameters.get("with_prior_preservation") == "True":
        if not verdict.class_prompt:
            verdict.reasons.append(
                f"with_prior_preservation needs a class_prompt in {DATASET_INFO_FILE}: "
                'add one such as "a photo of a dog", or turn it off'
            )
        family = training_instance_type.split(".")[1] if training_instance_type.count(".") == 2 else ""
        if family not in _PRIOR_PRESERVATION_FAMILIES:
            verdict.reasons.append(
                f"with_prior_preservation runs out of GPU memory on {training_instance_type}; "
                "set trainingInstanceType to ml.g5.2xlarge or larger, or turn it off"
            )
    verdict.reasons = [safe_text(reason) for reason in verdict.reasons]
    verdict.warnings = [safe_text(warning) for warning in verdict.warnings]
    verdict.valid = not verdict.reasons
    return verdict


def snapshot_hash(entries: Iterable[tuple[str, str, int]], settings: str = "") -> str:
    """Stable identity of what a training would use: (key, version-or-etag, size) of each training
    file (see is_training_file), plus `settings` (the configured default prompts and hyperparameters)."""
    import hashlib

    digest = hashlib.sha256(settings.encode("utf-8", "backslashreplace"))
    for key, version, size in sorted(entries):
        digest.update(f"{key}\0{version}\0{size}\n".encode("utf-8", "backslashreplace"))
    return digest.hexdigest()[:32]


# ---- the validator's configuration, as the stack sets it for every function that judges datasets ----

# Environment variable names (the pipeline's validator and the API's dataset commit both read them).


@dataclass(frozen=True)
class JudgeSettings:
    """What `evaluate` is configured with besides the dataset itself."""

    default_instance_prompt: str
    default_class_prompt: str
    default_hyperparameters: Mapping[str, str]
    training_instance_type: str
    limits: Limits

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "JudgeSettings":
        return cls(
            default_instance_prompt=environ[PipelineEnv.DEFAULT_INSTANCE_PROMPT],
            default_class_prompt=environ[PipelineEnv.DEFAULT_CLASS_PROMPT],
            default_hyperparameters=json.loads(environ[PipelineEnv.DEFAULT_HYPERPARAMETERS]),
            training_instance_type=environ[PipelineEnv.TRAINING_INSTANCE_TYPE],
            limits=Limits(
                min_images=int(environ[PipelineEnv.MIN_IMAGES]),
                max_images=int(environ[PipelineEnv.MAX_IMAGES]),
                max_image_bytes=int(environ[PipelineEnv.MAX_IMAGE_BYTES]),
            ),
        )

    def judge(self, dataset: str, files: Sequence[DatasetFile], read_info: Callable[[], bytes] | None) -> Verdict:
        return evaluate(
            dataset,
            files,
            read_info=read_info,
            default_instance_prompt=self.default_instance_prompt,
            default_class_prompt=self.default_class_prompt,
            default_hyperparameters=self.default_hyperparameters,
            training_instance_type=self.training_instance_type,
            limits=self.limits,
        )
