"""`dreambooth upload`: check a local folder with the pipeline's own rules, then upload it.

The rules are not copied: `rules()` is dreambooth_shared/dataset_rules.py, the module the pipeline's
validation Lambda imports (its asset carries the same package). A folder the
pipeline would refuse is refused here before anything is uploaded, with the same reasons; files
the pipeline would skip are skipped here with the same warning (and not uploaded).

Upload contract (docs/pipeline.md): images under `datasets/<name>/`, `dataset_info.json` last.
The pipeline trains once no file has arrived under `datasets/<name>/` for its quiet window, so the
images are first uploaded (the slow part, with the progress bar) to a staging prefix outside
`datasets/` that the pipeline's EventBridge rule does not match, `uploads/<name>/<token>/`; only
when every image is there are they copied server-side into `datasets/<name>/` (seconds apart,
well inside the quiet window; a Ctrl-C then waits for the copies), `dataset_info.json` is written
last, and this run's staging objects are deleted. An upload that stops while staging (slow link,
network error, Ctrl-C) leaves nothing under `datasets/`, so no training starts; only its staging
objects may remain, which trigger nothing and are safe to delete.

The CLI never deletes or overwrites anything under `datasets/`: a dataset name that already has
files is refused (upload under another name to train on other photos), and every copy and the
info file are conditional writes (If-None-Match: *) that S3 refuses if the key exists. The only
deletes are the staging objects this run created. The user's own files are only read; `--resize`
writes its 512 px copies to a temporary folder.
"""

from __future__ import annotations

import dataclasses
import decimal
import json
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Optional

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from dreambooth_shared import dataset_rules

RESIZE_PX = 512
# What an upload can die of (a KeyboardInterrupt included): reported, never a traceback.
UPLOAD_ERRORS = (KeyboardInterrupt, S3UploadFailedError, ClientError, BotoCoreError, OSError)
# Limits no photo reaches, used to judge originals that --resize will shrink anyway.
_NO_SIZE_LIMIT = 1 << 62


def rules() -> ModuleType:
    """The pipeline's dataset rules (the functions import the same module, `dreambooth_shared.dataset_rules`)."""
    return dataset_rules


class DatasetRefused(Exception):
    """The folder cannot be uploaded; `reasons` say why, in the pipeline's words."""

    def __init__(self, reasons: list[str], warnings: Optional[list[str]] = None):
        super().__init__("; ".join(reasons))
        self.reasons = reasons
        self.warnings = warnings or []


class DatasetExists(Exception):
    """The bucket already holds files under this dataset name."""


def settings_from_config(config: Any, lock_hyperparameters: dict[str, str]) -> Any:
    """What the pipeline's validator is configured with (from the same cdk context as the deploy):
    the rules module's own JudgeSettings, as the stack sets it for the validator and the API."""
    training = config.training
    r = rules()
    return r.JudgeSettings(
        default_instance_prompt=training.default_instance_prompt,
        default_class_prompt=training.default_class_prompt,
        default_hyperparameters=dict(lock_hyperparameters),
        training_instance_type=training.instance_type,
        limits=r.Limits(
            min_images=training.min_images,
            max_images=training.max_images,
            max_image_bytes=training.max_image_mb * 1024 * 1024,
        ),
    )


@dataclass
class Plan:
    """A checked dataset, ready to upload: images (local paths, maybe resized copies), then the info file."""

    dataset: str
    images: list[tuple[str, Path]]
    dataset_info: bytes
    instance_prompt: str
    class_prompt: str
    warnings: list[str] = field(default_factory=list)
    resized: bool = False
    temp_dir: Optional[Path] = None

    @property
    def total_bytes(self) -> int:
        return sum(path.stat().st_size for _, path in self.images) + len(self.dataset_info)

    def cleanup(self) -> None:
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None


def _scan(directory: Path) -> tuple[list[Any], dict[str, Path], Optional[bytes]]:
    """The folder as the pipeline would list it under datasets/<name>/: names relative to it."""
    r = rules()
    files, paths, info = [], {}, None
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        if name == r.DATASET_INFO_FILE:
            info = path.read_bytes()
            continue
        size = path.stat().st_size
        header, tail = b"", None
        if r.is_training_file(name):
            with path.open("rb") as handle:
                header = handle.read(r.HEADER_BYTES)
                handle.seek(max(0, size - r.TAIL_BYTES))
                tail = handle.read(r.TAIL_BYTES)
        files.append(r.DatasetFile(name=name, size=size, header=header, tail=tail))
        paths[name] = path
    return files, paths, info


def _dataset_info(base: Optional[bytes], prompt: Optional[str], class_prompt: Optional[str]) -> bytes:
    """The folder's own dataset_info.json (if any) with the prompts given on the command line."""
    if base is not None and prompt is None and class_prompt is None:
        return base  # uploaded as it is: its numbers and text exactly as written
    data: dict[str, Any] = {}
    if base is not None:
        data = rules().load_json(base)  # the pipeline's own loader and messages
        if not isinstance(data, dict):
            rules().parse_dataset_info(base)
    if prompt is not None:
        data["instance_prompt"] = prompt
    if class_prompt is not None:
        data["class_prompt"] = class_prompt
    # Numbers are kept as the literals they were (Decimal); lone surrogates stay \u escapes, which
    # the rules then refuse naming the field.
    return (json.dumps(data, indent=2, default=_json_number) + "\n").encode("utf-8")


def _json_number(value: Any) -> Any:
    """A Decimal as the same JSON number when int or float holds it exactly, else as its literal text
    (which the rules read as that number, and refuse naming the field when it is out of range)."""
    if not isinstance(value, decimal.Decimal):
        raise TypeError(f"{type(value).__name__} is not JSON")
    if value.is_finite() and abs(value.adjusted()) < 300:
        if value == value.to_integral_value():
            return int(value)
        if decimal.Decimal(repr(float(value))) == value:
            return float(value)
    return str(value)


def prepare(
    directory: Path,
    dataset: str,
    *,
    prompt: Optional[str],
    class_prompt: Optional[str],
    settings: Any,
    resize: bool = False,
) -> Plan:
    """Judge the folder as the pipeline would; DatasetRefused with every reason when it would refuse it."""
    r = rules()
    if not directory.is_dir():
        raise DatasetRefused([f"{directory} is not a folder"])
    try:
        files, paths, base_info = _scan(directory)
        info = _dataset_info(base_info, prompt, class_prompt)
    except r.DatasetError as error:
        raise DatasetRefused([str(error)]) from None
    except OSError as error:
        raise DatasetRefused([f"cannot read {error.filename}: {error.strerror}"]) from None

    judge = settings
    if resize:
        # Originals only need to be real images of a usable size; the copies must pass every limit.
        judge = dataclasses.replace(
            settings,
            limits=dataclasses.replace(settings.limits, max_image_bytes=_NO_SIZE_LIMIT, max_side_px=_NO_SIZE_LIMIT),
        )
    verdict = judge.judge(dataset, files, lambda: info)
    if not verdict.valid:
        raise DatasetRefused(verdict.reasons, verdict.warnings)
    images = [(name, paths[name]) for name in verdict.image_names]
    plan = Plan(dataset, images, info, verdict.instance_prompt, verdict.class_prompt, list(verdict.warnings))
    if not resize:
        return plan

    temp_dir = Path(tempfile.mkdtemp(prefix="dreambooth-resized-"))
    try:
        copies = [(name, center_crop(path, temp_dir / name)) for name, path in images]
        resized_files = []
        for name, copy in copies:
            with copy.open("rb") as handle:
                resized_files.append(
                    r.DatasetFile(name=name, size=copy.stat().st_size, header=handle.read(r.HEADER_BYTES))
                )
        verdict = settings.judge(dataset, resized_files, lambda: info)
        if not verdict.valid:
            raise DatasetRefused(verdict.reasons, plan.warnings)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    plan.images, plan.resized, plan.temp_dir = copies, True, temp_dir
    return plan


def center_crop(source: Path, target: Path, size: int = RESIZE_PX) -> Path:
    """A `size` x `size` centre crop of `source` written to `target`, in the source's format."""
    from PIL import Image, ImageOps

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image_format = image.format
        upright = ImageOps.exif_transpose(image)
        mode = "RGBA" if image_format == "PNG" and "A" in upright.getbands() else "RGB"
        square = ImageOps.fit(upright.convert(mode), (size, size), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    with target.open("xb") as handle:  # a fresh temporary folder: never an existing file
        if image_format == "PNG":
            square.save(handle, format="PNG", optimize=True)
        else:
            square.save(handle, format="JPEG", quality=95)
    return target


def dataset_prefix(dataset: str) -> str:
    return f"{rules().DATASETS_PREFIX}{dataset}/"


def existing_objects(s3: Any, bucket: str, dataset: str) -> int:
    answer = s3.list_objects_v2(Bucket=bucket, Prefix=dataset_prefix(dataset), MaxKeys=10)
    return int(answer.get("KeyCount", 0))


def staging_prefix(dataset: str, token: str) -> str:
    # Outside datasets/: the pipeline's "Object Created" rule matches only keys under datasets/.
    return rules().upload_prefix(dataset, token)


def new_token() -> str:
    """Unique per run, readable (the same form as the web page's uploads)."""
    return rules().new_upload_token()


class StagingIncomplete(Exception):
    """A staged image is missing or has another size than the local file (checked before any copy)."""


def _check_staged(s3: Any, bucket: str, staging: str, plan: Plan) -> None:
    found: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=staging):
        found.update({o["Key"][len(staging) :]: o["Size"] for o in page.get("Contents", [])})
    wrong = [name for name, path in plan.images if found.get(name) != path.stat().st_size]
    if wrong:
        raise StagingIncomplete(f"{len(wrong)} staged images missing or incomplete, e.g. {wrong[0]}")


class UploadFailed(Exception):
    """The upload stopped. `phase` is "staging" (nothing under datasets/) or "copying".

    `staged`: staging keys that may exist (safe to delete); `copied`: keys already under datasets/.
    """

    def __init__(self, cause: BaseException, *, phase: str, staging: str, staged: list[str], copied: list[str]):
        super().__init__(str(cause))
        self.cause, self.phase, self.staging, self.staged, self.copied = cause, phase, staging, staged, copied

    @property
    def interrupted(self) -> bool:
        return isinstance(self.cause, KeyboardInterrupt)


@dataclass
class Uploaded:
    """keys: what is now under datasets/<name>/ (dataset_info.json last); staging_left: staging keys
    that could not be deleted; interrupted: Ctrl-C came during the copies, which were finished first."""

    keys: list[str]
    staging: str
    staging_left: list[str] = field(default_factory=list)
    interrupted: bool = False


@contextmanager
def _finish_before_interrupt(say: Callable[[str], None]) -> Iterator[list[bool]]:
    """Ctrl-C inside the block is remembered (flag[0]) instead of raised: the copies take seconds, and
    stopping between them would leave part of a dataset under datasets/ for the pipeline to train on."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def remember(signum: int, frame: Any) -> None:
        if not flag[0]:
            say("Ctrl-C: finishing the copies into datasets/ first (a few seconds)")
        flag[0] = True

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _delete_staging(s3: Any, bucket: str, keys: list[str]) -> list[str]:
    """Deletes exactly these keys (this run's staging objects); returns those still there."""
    left = []
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        try:
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
            left += [error["Key"] for error in answer.get("Errors", [])]
        except (ClientError, BotoCoreError):
            left += chunk
    return left


def upload(
    plan: Plan,
    s3: Any,
    bucket: str,
    progress: Any,
    *,
    say: Callable[[str], None] = lambda _: None,
    token: Optional[str] = None,
) -> Uploaded:
    """Images to staging, then copied into datasets/<name>/, dataset_info.json last, staging deleted.

    Refuses (DatasetExists) a name that already has files, before uploading and again before copying.
    Raises UploadFailed when staging or copying stops. `progress(name, bytes_sent)` is called as bytes
    go out, `progress.file_done(name)` after each file.
    """
    prefix = dataset_prefix(plan.dataset)
    staging = staging_prefix(plan.dataset, token or new_token())

    def refuse_if_taken() -> None:
        if existing_objects(s3, bucket, plan.dataset):
            raise DatasetExists(
                f"s3://{bucket}/{prefix} already holds files; the CLI never overwrites or deletes files in "
                f"the bucket. Upload under a new name (e.g. --name {plan.dataset}-2) to train on these photos."
            )

    refuse_if_taken()
    staged: list[str] = []
    try:
        for name, path in plan.images:
            key = staging + name
            with path.open("rb") as handle:
                content_type = "image/png" if handle.read(4) == b"\x89PNG" else "image/jpeg"
            staged.append(key)  # before the call: an interrupted call may still leave the object
            s3.upload_file(
                str(path),
                bucket,
                key,
                ExtraArgs={"ContentType": content_type},
                Callback=lambda sent, _name=name: progress(_name, sent),
            )
            progress.file_done(name)
        _check_staged(s3, bucket, staging, plan)  # every image is there, whole, before anything is copied
        try:
            refuse_if_taken()  # someone may have used the name while the photos went up
        except DatasetExists:
            _delete_staging(s3, bucket, staged)  # this run's own staging objects, nothing else
            raise
    except (*UPLOAD_ERRORS, StagingIncomplete) as error:
        raise UploadFailed(error, phase="staging", staging=staging, staged=staged, copied=[]) from error

    say(f"all {len(plan.images)} images staged; copying them into {prefix}")
    keys: list[str] = []
    with _finish_before_interrupt(say) as interrupted:
        try:
            for name, _ in plan.images:
                # IfNoneMatch: S3 refuses (412) a copy onto an existing key: nothing is overwritten.
                s3.copy_object(
                    Bucket=bucket,
                    Key=prefix + name,
                    CopySource={"Bucket": bucket, "Key": staging + name},
                    IfNoneMatch="*",
                )
                keys.append(prefix + name)
            info_key = prefix + rules().DATASET_INFO_FILE
            s3.put_object(
                Bucket=bucket, Key=info_key, Body=plan.dataset_info, ContentType="application/json", IfNoneMatch="*"
            )
            keys.append(info_key)
        except UPLOAD_ERRORS as error:
            raise UploadFailed(error, phase="copying", staging=staging, staged=staged, copied=keys) from error
        progress(rules().DATASET_INFO_FILE, len(plan.dataset_info))
        progress.file_done(rules().DATASET_INFO_FILE)
        left = _delete_staging(s3, bucket, staged)
    return Uploaded(keys, staging, left, interrupted[0])
