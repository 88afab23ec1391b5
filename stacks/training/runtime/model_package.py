"""Make a trained model servable: its uncompressed output gets JumpStart's inference code under code/.

Training writes its output uncompressed (OutputDataConfig CompressionType NONE) under
`<output>/<job>/output/model/`, and the endpoint serves that prefix as it is (ModelDataSource,
S3Prefix, no compression), with SAGEMAKER_PROGRAM=inference.py and
SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code. The container imports code/inference.py from
the model data, so an output without it cannot serve. Whether this recipe's training output
holds it is not documented: when `code/inference.py` is missing, this step unpacks JumpStart's
inference script tarball (the lock's `inference_script_uri`) into `code/`, as the SageMaker SDK
repacks `source_dir` into a model. Only small files are involved (the script tarball is a few
KB to a few MB); the model weights are never read or copied, so one Lambda invocation is enough
well within its 15 minutes and memory: a tarball over MAX_SCRIPT_TARBALL_BYTES is refused.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from typing import Any

CODE_DIR = "code/"
ENTRY_POINT = "inference.py"
MAX_SCRIPT_TARBALL_BYTES = 64 * 1024 * 1024


class PackagingError(RuntimeError):
    """The inference code cannot be added (bad tarball, no inference.py in it)."""


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise PackagingError(f"not an S3 URI: {uri}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def has_inference_code(s3: Any, model_uri: str) -> bool:
    bucket, prefix = split_s3_uri(model_uri.rstrip("/") + "/")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + CODE_DIR + ENTRY_POINT, MaxKeys=1)
    return any(o["Key"] == prefix + CODE_DIR + ENTRY_POINT for o in listing.get("Contents", []))


def script_files(tarball: bytes) -> dict[str, bytes]:
    """The regular files of a source-directory tarball by relative path; `inference.py` must be one."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:*") as archive:
            for member in archive.getmembers():
                if not member.isfile():
                    continue  # directories; links and devices are never written
                path = posixpath.normpath(member.name)
                if path.startswith("/") or path.split("/")[0] == "..":
                    raise PackagingError(f"unsafe path in the inference script tarball: {member.name}")
                extracted = archive.extractfile(member)
                files[path] = extracted.read() if extracted else b""
    except tarfile.TarError as error:
        raise PackagingError(f"the inference script tarball cannot be read ({error})") from None
    if ENTRY_POINT not in files:
        raise PackagingError(f"the inference script tarball has no {ENTRY_POINT} at its top level "
                             f"(files: {', '.join(sorted(files)[:10]) or 'none'})")
    return files


def add_inference_code(s3: Any, model_uri: str, script_uri: str) -> dict[str, Any]:
    """Copy JumpStart's inference code into `<model_uri>code/` unless code/inference.py is there."""
    model_uri = model_uri.rstrip("/") + "/"
    if has_inference_code(s3, model_uri):
        return {"modelDataUri": model_uri, "added": False, "files": 0}
    script_bucket, script_key = split_s3_uri(script_uri)
    head = s3.head_object(Bucket=script_bucket, Key=script_key)
    if head["ContentLength"] > MAX_SCRIPT_TARBALL_BYTES:
        raise PackagingError(f"{script_uri} is {head['ContentLength']} bytes, more than the "
                             f"{MAX_SCRIPT_TARBALL_BYTES} this step unpacks")
    files = script_files(s3.get_object(Bucket=script_bucket, Key=script_key)["Body"].read())
    bucket, prefix = split_s3_uri(model_uri)
    for path, body in sorted(files.items()):
        s3.put_object(Bucket=bucket, Key=prefix + CODE_DIR + path, Body=body)
    return {"modelDataUri": model_uri, "added": True, "files": len(files)}
