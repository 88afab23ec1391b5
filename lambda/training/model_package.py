"""Make a trained model servable: its output unpacked to an S3 prefix, with JumpStart's inference code under code/.

Training writes its output as SageMaker's default `<output>/<job>/output/model.tar.gz` (the
optimized `createTrainingJob.sync` integration is not shown to accept OutputDataConfig
CompressionType: tests/test_optimized_integration_fields.py). This step unpacks it, streaming,
into `<output>/<job>/output/model/` (the layout SageMaker itself gives an uncompressed output),
and the endpoint serves that prefix as it is (ModelDataSource, S3Prefix, no compression: no
multi-GB untar at every instance start), with SAGEMAKER_PROGRAM=inference.py and
SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code. The container imports code/inference.py from the
model data, so an output without it cannot serve. Whether this recipe's training output holds it is
not documented: when `code/inference.py` is missing, this step unpacks JumpStart's inference script
tarball (the lock's `inference_script_uri`) into `code/`, as the SageMaker SDK repacks `source_dir`
into a model. The model tarball is read once, member by member, and each file streamed to S3 (no
local disk, memory bounded by the upload's part size); the script tarball is small (over
MAX_SCRIPT_TARBALL_BYTES it is refused). Running it again writes the same objects.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from typing import Any

CODE_DIR = "code/"
MODEL_TARBALL = "model.tar.gz"
UNPACKED_DIR = "model/"
"""Where the tarball's files go, beside it: `<output>/<job>/output/model/`."""
ENTRY_POINT = "inference.py"
MAX_SCRIPT_TARBALL_BYTES = 64 * 1024 * 1024


class PackagingError(RuntimeError):
    """The inference code cannot be added (bad tarball, no inference.py in it)."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise PackagingError(f"not an S3 URI: {uri}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def has_inference_code(s3: Any, model_uri: str) -> bool:
    bucket, prefix = split_s3_uri(model_uri.rstrip("/") + "/")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + CODE_DIR + ENTRY_POINT, MaxKeys=1)
    return any(o["Key"] == prefix + CODE_DIR + ENTRY_POINT for o in listing.get("Contents", []))


def _safe_path(name: str, what: str) -> str:
    path = posixpath.normpath(name)
    if path.startswith("/") or path.split("/")[0] == "..":
        raise PackagingError(f"unsafe path in the {what}: {name}")
    return path


class _Stream:
    """A tar member read from the tarball's stream, for S3's upload: read() only (s3transfer then
    uploads it in parts as it comes; tarfile's stream members fail when asked whether they can seek)."""

    def __init__(self, member_file: Any) -> None:
        self._file = member_file

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seekable(self) -> bool:
        return False


def unpack_model(s3: Any, tarball_uri: str) -> tuple[str, set[str]]:
    """Stream `<...>/model.tar.gz` into `<...>/model/`: (that prefix as a URI, the relative paths written)."""
    bucket, key = split_s3_uri(tarball_uri)
    prefix = key[: -len(MODEL_TARBALL)] + UNPACKED_DIR
    written: set[str] = set()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        with tarfile.open(fileobj=body, mode="r|*") as archive:  # a stream: one pass, no seeking
            for member in archive:
                if not member.isfile():
                    continue  # directories; links and devices are never written
                path = _safe_path(member.name, "model tarball")
                s3.upload_fileobj(_Stream(archive.extractfile(member)), bucket, prefix + path)
                written.add(path)
    except tarfile.TarError as error:
        raise PackagingError(f"the model tarball {tarball_uri} cannot be read ({error})") from None
    if not written:
        raise PackagingError(f"the model tarball {tarball_uri} holds no files")
    return f"s3://{bucket}/{prefix}", written


def script_files(tarball: bytes) -> dict[str, bytes]:
    """The regular files of a source-directory tarball by relative path; `inference.py` must be one."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:*") as archive:
            for member in archive.getmembers():
                if not member.isfile():
                    continue  # directories; links and devices are never written
                path = _safe_path(member.name, "inference script tarball")
                extracted = archive.extractfile(member)
                files[path] = extracted.read() if extracted else b""
    except tarfile.TarError as error:
        raise PackagingError(f"the inference script tarball cannot be read ({error})") from None
    if ENTRY_POINT not in files:
        raise PackagingError(
            f"the inference script tarball has no {ENTRY_POINT} at its top level "
            f"(files: {', '.join(sorted(files)[:10]) or 'none'})"
        )
    return files


def add_inference_code(s3: Any, model_uri: str, script_uri: str) -> dict[str, Any]:
    """The servable prefix of a training output (a model.tar.gz is unpacked first), with JumpStart's
    inference code copied into its `code/` unless code/inference.py is there."""
    if model_uri.endswith("/" + MODEL_TARBALL):
        model_uri, unpacked = unpack_model(s3, model_uri)
        has_code = CODE_DIR + ENTRY_POINT in unpacked
    else:  # already a prefix (an uncompressed output)
        model_uri = model_uri.rstrip("/") + "/"
        has_code = has_inference_code(s3, model_uri)
    if has_code:
        return {"modelDataUri": model_uri, "added": False, "files": 0}
    script_bucket, script_key = split_s3_uri(script_uri)
    head = s3.head_object(Bucket=script_bucket, Key=script_key)
    if head["ContentLength"] > MAX_SCRIPT_TARBALL_BYTES:
        raise PackagingError(
            f"{script_uri} is {head['ContentLength']} bytes, more than the {MAX_SCRIPT_TARBALL_BYTES} this step unpacks"
        )
    files = script_files(s3.get_object(Bucket=script_bucket, Key=script_key)["Body"].read())
    bucket, prefix = split_s3_uri(model_uri)
    for path, body in sorted(files.items()):
        s3.put_object(Bucket=bucket, Key=prefix + CODE_DIR + path, Body=body)
    return {"modelDataUri": model_uri, "added": True, "files": len(files)}
