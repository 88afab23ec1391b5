"""What makes a dataset trainable: pure rules, no AWS calls, reusable by the CLI.

A dataset is the set of files under `datasets/<name>/`. Images (PNG or JPEG) are judged by their
content, not by their extension: the first bytes of each file are parsed for the PNG IHDR chunk or
the JPEG start-of-frame marker, which give the dimensions without decoding the picture. Anything
else is skipped with a warning, and `dataset_info.json` supplies prompts and hyperparameter
overrides from an allow-list with checked ranges.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

DATASETS_PREFIX = "datasets/"
DATASET_INFO_FILE = "dataset_info.json"
# Where the pipeline copies an accepted snapshot for the training job. Its first path part is not
# a valid dataset name, so uploads the pipeline makes there never trigger a training.
STAGING_PREFIX = DATASETS_PREFIX + "_pipeline/"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Enough to reach a JPEG's start-of-frame marker behind a large EXIF/ICC block.
HEADER_BYTES = 256 * 1024
MAX_DATASET_INFO_BYTES = 64 * 1024
# Where the CLI and the web page stage a dataset's images before committing them into datasets/<name>/:
# uploads/<name>/<token>/ (outside datasets/, so staging never triggers the pipeline).
UPLOADS_PREFIX = "uploads/"


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


@dataclass(frozen=True)
class DatasetFile:
    """One object of the dataset: its key relative to the dataset folder, size and first bytes."""

    name: str
    size: int
    header: bytes = b""


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


def dataset_name_from_key(key: str) -> Optional[str]:
    """`datasets/<name>/...` -> `<name>`; None for keys outside a dataset folder."""
    if not key.startswith(DATASETS_PREFIX):
        return None
    rest = key[len(DATASETS_PREFIX):]
    name, slash, file_part = rest.partition("/")
    if not slash or not name or not file_part:
        return None
    return name


def dataset_name_problem(name: str) -> Optional[str]:
    if DATASET_NAME.match(name):
        return None
    return f"dataset name {name!r} is not allowed: use {DATASET_NAME_RULE}"


def check_dataset_name(name: str) -> None:
    problem = dataset_name_problem(name)
    if problem:
        raise DatasetError(problem)


# ---- images, judged by content -------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers that carry dimensions (not DHT C4, JPG C8, DAC CC).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_info(header: bytes) -> ImageInfo:
    """Format and dimensions from a file's first bytes; DatasetError when it is no PNG/JPEG."""
    if header.startswith(_PNG_SIGNATURE):
        return _png_info(header)
    if header.startswith(b"\xff\xd8\xff"):
        return _jpeg_info(header)
    raise DatasetError("not a PNG or JPEG image (content does not start with an image signature)")


def _png_info(data: bytes) -> ImageInfo:
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise DatasetError("damaged PNG: no IHDR header")
    width, height = struct.unpack(">II", data[16:24])
    return ImageInfo("png", width, height)


def _jpeg_info(data: bytes) -> ImageInfo:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise DatasetError("damaged JPEG: marker expected")
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
            raise DatasetError("damaged JPEG: bad segment length")
        if marker in _JPEG_SOF:
            if position + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return ImageInfo("jpeg", width, height)
        position += 2 + length
    raise DatasetError(
        f"JPEG dimensions not found in the first {HEADER_BYTES // 1024} KiB (damaged or unusual file)"
    )


def check_image(file: DatasetFile, limits: Limits) -> ImageInfo:
    if file.size > limits.max_image_bytes:
        raise DatasetError(
            f"{file.size / 1_048_576:.1f} MB is larger than the {limits.max_image_bytes // 1_048_576} MB limit"
        )
    info = image_info(file.header)
    if info.width == 0 or info.height == 0:
        raise DatasetError("image has zero width or height")
    if min(info.width, info.height) < limits.min_side_px:
        raise DatasetError(
            f"{info.width}x{info.height} is too small: the shorter side must be at least {limits.min_side_px} px"
        )
    if max(info.width, info.height) > limits.max_side_px:
        raise DatasetError(
            f"{info.width}x{info.height} is too large: the longer side must be at most {limits.max_side_px} px"
        )
    return info


# ---- prompts and hyperparameters -----------------------------------------------------------


def check_prompt(field_name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise DatasetError(f"{field_name} must be text")
    text = " ".join(value.split())
    if _CONTROL.search(value.replace("\n", " ").replace("\t", " ")):
        raise DatasetError(f"{field_name} contains control characters")
    if not MIN_PROMPT_CHARS <= len(text) <= MAX_PROMPT_CHARS:
        raise DatasetError(f"{field_name} must be {MIN_PROMPT_CHARS}-{MAX_PROMPT_CHARS} characters long")
    if not re.search(r"[^\W\d_]", text):
        raise DatasetError(f"{field_name} must contain words")
    return text


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
        noun = "a whole number" if self.kind is int else "a number"
        return f"{noun} from {self.minimum:g} to {self.maximum:g}"

    def render(self, name: str, value: Any) -> str:
        """The value as the string SageMaker hyperparameters need; DatasetError when out of range."""
        problem = DatasetError(f"hyperparameter {name}={value!r} is not allowed: expected {self.describe()}")
        if self.kind is bool:
            if isinstance(value, bool):
                return "True" if value else "False"
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                return "True" if value.strip().lower() == "true" else "False"
            raise problem
        if self.choices:
            if value not in self.choices:
                raise problem
            return str(value)
        if isinstance(value, bool):
            raise problem
        try:
            number = float(value) if self.kind is float else int(str(value).strip())
        except (TypeError, ValueError):
            raise problem from None
        if self.kind is int and isinstance(value, float) and not value.is_integer():
            raise problem
        if number != number or not (self.minimum <= number <= self.maximum):  # NaN or out of range
            raise problem
        return repr(float(number)) if self.kind is float else str(int(number))


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
        raise DatasetError("hyperparameters must be a JSON object")
    problems, rendered = [], {}
    for name, value in raw.items():
        rule = HYPERPARAMETER_RULES.get(name)
        if rule is None:
            problems.append(
                f"hyperparameter {name!r} cannot be overridden (allowed: {', '.join(sorted(HYPERPARAMETER_RULES))})"
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
    """Parse dataset_info.json. Overrides may sit under "hyperparameters" or at the top level."""
    if len(text) > MAX_DATASET_INFO_BYTES:
        raise DatasetError(f"{DATASET_INFO_FILE} is larger than {MAX_DATASET_INFO_BYTES // 1024} KiB")
    try:
        data = json.loads(text.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{DATASET_INFO_FILE} is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{DATASET_INFO_FILE} must hold a JSON object")
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
    overrides_raw = dict(data.get("hyperparameters") or {}) if isinstance(data.get("hyperparameters", {}), dict) else None
    if overrides_raw is None:
        problems.append("hyperparameters must be a JSON object")
        overrides_raw = {}
    for key, value in data.items():
        if key not in _INFO_FIELDS:
            overrides_raw[key] = value
    overrides = {}
    try:
        overrides = check_overrides(overrides_raw)
    except DatasetError as error:
        problems.append(str(error))
    if problems:
        raise DatasetError("; ".join(problems))
    return DatasetInfo(instance_prompt, class_prompt, overrides)


# ---- the whole dataset ---------------------------------------------------------------------


def is_hidden_or_nested(name: str) -> bool:
    return "/" in name or name.startswith(".")


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
        if is_hidden_or_nested(file.name) or not file.name.lower().endswith(IMAGE_SUFFIXES):
            verdict.warnings.append(f"skipped {file.name}: not a .jpg, .jpeg or .png file in the dataset folder")
            continue
        try:
            check_image(file, limits)
            image_count += 1
            verdict.image_names.append(file.name)
        except DatasetError as error:
            verdict.reasons.append(f"{file.name}: {error}")
    verdict.image_count = image_count
    if image_count < limits.min_images:
        verdict.reasons.append(f"{image_count} usable images; at least {limits.min_images} are needed")
    if image_count > limits.max_images:
        verdict.reasons.append(f"{image_count} images; at most {limits.max_images} are allowed")

    try:
        verdict.instance_prompt = info.instance_prompt or check_prompt(
            "default instance prompt", default_instance_prompt.replace("{dataset}", dataset)
        )
    except DatasetError as error:
        verdict.reasons.append(str(error))
    verdict.class_prompt = info.class_prompt or (default_class_prompt or "").strip()

    hyperparameters = dict(default_hyperparameters)
    hyperparameters.update(info.overrides)
    verdict.hyperparameters = hyperparameters
    if hyperparameters.get("with_prior_preservation") == "True":
        if not verdict.class_prompt:
            verdict.reasons.append("with_prior_preservation needs a class_prompt in dataset_info.json")
        family = training_instance_type.split(".")[1] if training_instance_type.count(".") == 2 else ""
        if family not in _PRIOR_PRESERVATION_FAMILIES:
            verdict.reasons.append(
                f"with_prior_preservation runs out of GPU memory on {training_instance_type}; "
                "set trainingInstanceType to ml.g5.2xlarge or larger, or turn it off"
            )
    verdict.valid = not verdict.reasons
    return verdict


def snapshot_hash(entries: Iterable[tuple[str, str, int]]) -> str:
    """Stable identity of a dataset's content: (key, version-or-etag, size) of every object."""
    import hashlib

    digest = hashlib.sha256()
    for key, version, size in sorted(entries):
        digest.update(f"{key}\0{version}\0{size}\n".encode())
    return digest.hexdigest()[:32]


# ---- the validator's configuration, as the stack sets it for every function that judges datasets ----

# Environment variable names (the pipeline's validator and the API's dataset commit both read them).
ENV_DEFAULT_INSTANCE_PROMPT = "DEFAULT_INSTANCE_PROMPT"
ENV_DEFAULT_CLASS_PROMPT = "DEFAULT_CLASS_PROMPT"
ENV_DEFAULT_HYPERPARAMETERS = "DEFAULT_HYPERPARAMETERS"
ENV_TRAINING_INSTANCE_TYPE = "TRAINING_INSTANCE_TYPE"
ENV_MIN_IMAGES = "MIN_IMAGES"
ENV_MAX_IMAGES = "MAX_IMAGES"
ENV_MAX_IMAGE_BYTES = "MAX_IMAGE_BYTES"


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
            default_instance_prompt=environ[ENV_DEFAULT_INSTANCE_PROMPT],
            default_class_prompt=environ.get(ENV_DEFAULT_CLASS_PROMPT, ""),
            default_hyperparameters=json.loads(environ[ENV_DEFAULT_HYPERPARAMETERS]),
            training_instance_type=environ[ENV_TRAINING_INSTANCE_TYPE],
            limits=Limits(min_images=int(environ[ENV_MIN_IMAGES]), max_images=int(environ[ENV_MAX_IMAGES]),
                          max_image_bytes=int(environ[ENV_MAX_IMAGE_BYTES])),
        )

    def judge(self, dataset: str, files: Sequence[DatasetFile], read_info: Callable[[], bytes] | None) -> Verdict:
        return evaluate(dataset, files, read_info=read_info, default_instance_prompt=self.default_instance_prompt,
                        default_class_prompt=self.default_class_prompt,
                        default_hyperparameters=self.default_hyperparameters,
                        training_instance_type=self.training_instance_type, limits=self.limits)
