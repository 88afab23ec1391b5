"""Training from the browser: stage a dataset's photos with presigned POSTs, then commit them.

The same contract as `dreambooth upload` (scripts/cli/dataset_upload.py), with the same module of
rules (dreambooth_shared/dataset_rules.py: the pipeline's own module, which the build copies into this
function's asset with the rest of the shared package):

1. POST /datasets: name, prompt phrase and the list of files (name, size). Checked at once with the
   pipeline's rules where they apply before upload (name, prompt, count, file types, sizes); an
   existing dataset name is refused (nothing under datasets/ is ever overwritten). Answers one
   presigned POST per file, to uploads/<name>/<token>/<file> (outside datasets/: staging never
   triggers the pipeline), each limited by S3 itself to that key, 1 byte to the image size limit,
   and an image content type.
2. The browser POSTs the files straight to S3.
3. POST /datasets/{name}/commit: the staged files are judged with the pipeline's `evaluate` (by
   content: the first bytes of each, read with ranged GETs), exactly as the pipeline's validator will
   judge them. Only when all pass are they copied server-side into datasets/<name>/ (conditional
   writes, If-None-Match: *), dataset_info.json last; else every reason is answered and nothing is
   written under datasets/. This upload's staging objects are then deleted either way.

One commit per dataset name at a time: a commit first claims the name with an object under
uploads/ (a conditional write), and every other commit of that name (a second click, a client's
retry while the first still runs, another upload of the same name) answers 409 until it ends. Two
commits copying side by side would otherwise each find some photos already copied by the other,
both stop with 409 and leave a dataset without its dataset_info.json; one finishing first deleted
the staging objects under the other (NoSuchKey, a 500). A claim older than the API function can
run belongs to a commit that died, and is taken over.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from botocore.exceptions import ClientError

import spec
from aws import Clients
from dreambooth_shared import dataset_rules as rules
from dreambooth_shared.contract import API_GATEWAY_LIMIT_S, UPLOADS_PREFIX, error_code
from errors import ApiError, BadRequest, Conflict, FieldError, NotFound
from settings import Settings

START_SCHEMA = "DatasetUploadRequest"
COMMIT_SCHEMA = "DatasetCommitRequest"
# Parallel S3 calls (header reads, copies, deletes): 100 images must be committed well inside
# API Gateway's 29 s.
S3_WORKERS = 16
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
_TOKEN_CHARS = frozenset("0123456789abcdefTZ-")
# The API function is stopped before API Gateway's limit: a claim this old has no commit behind it.
COMMIT_CLAIM_STALE_S = API_GATEWAY_LIMIT_S
_PRECONDITION_FAILED = ("PreconditionFailed", "412")
# S3 answers 409 ConditionalRequestConflict to a conditional write racing another write of the key.
_WRITE_RACED = _PRECONDITION_FAILED + ("ConditionalRequestConflict", "409")
_GONE = ("NoSuchKey", "404", "NotFound")
# HeadObject of a missing key answers 403 to a caller whose s3:ListBucket does not cover the request:
# the API role's is held to prefixes by an s3:prefix condition, which a HeadObject does not send.
# With s3:GetObject granted on the key (it is, on uploads/), that 403 can only mean "not there".
_HEAD_GONE = _GONE + ("403", "Forbidden", "AccessDenied")


def commit_claim_key(dataset: str) -> str:
    """uploads/<name>/.commit: beside the uploads' token folders (a token has no dot), never listed
    as a staged photo, expired with abandoned staging by the bucket's lifecycle rule."""
    return f"{UPLOADS_PREFIX}{dataset}/.commit"


class DatasetRefused(ApiError):
    """The staged files would be refused by the pipeline; `reasons` say why, in its words."""

    status = 422
    code = "DatasetRefused"

    def __init__(self, reasons: list[str], warnings: list[str]):
        super().__init__(f"the pipeline would refuse this dataset: {'; '.join(reasons)}")
        self.reasons, self.warnings = reasons, warnings

    def body(self, request_id: str | None = None) -> dict:
        body = super().body(request_id)
        body["error"].update(reasons=self.reasons, warnings=self.warnings)
        return body


def dataset_info(instance_prompt: str, class_prompt: str | None) -> bytes:
    data = {"instance_prompt": instance_prompt}
    if class_prompt:
        data["class_prompt"] = class_prompt
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _bad(field_name: str, message: str) -> BadRequest:
    return BadRequest(f"invalid request: {field_name}: {message}", fields=(FieldError(field_name, message),))


@dataclass
class Datasets:
    settings: Settings
    clients: Clients
    judge: rules.JudgeSettings
    new_token: Callable[[], str] = field(default=rules.new_upload_token)
    clock: Callable[[], float] = field(default=time.time)

    # ---- checks shared by both steps ----

    def _check_name(self, name: str) -> None:
        problem = rules.dataset_name_problem(name)
        if problem:
            raise _bad("dataset", problem)

    def _check_prompts(self, body: dict[str, Any]) -> None:
        for key in ("instance_prompt", "class_prompt"):
            if body.get(key) is not None:
                try:
                    rules.check_prompt(key, body[key])
                except rules.DatasetError as error:
                    raise _bad(key, str(error)) from None

    def _taken(self, name: str) -> bool:
        answer = self.clients.s3.list_objects_v2(
            Bucket=self.settings.bucket_name, Prefix=f"{rules.DATASETS_PREFIX}{name}/", MaxKeys=1
        )
        return bool(answer.get("KeyCount", 0))

    def _refuse_if_taken(self, name: str) -> None:
        if self._taken(name):
            raise Conflict(
                f"a dataset named {name!r} already exists; nothing is ever overwritten: "
                f"choose another name (e.g. {name[:29]}-2)"
            )

    # ---- POST /datasets ----

    def start(self, body: Any) -> dict[str, Any]:
        request = spec.validate(START_SCHEMA, body)
        name = request["dataset"]
        self._check_name(name)
        self._check_prompts(request)
        limits = self.judge.limits
        files = request["files"]
        problems: list[FieldError] = []
        if not limits.min_images <= len(files) <= limits.max_images:
            problems.append(
                FieldError("files", f"{len(files)} photos; {limits.min_images}-{limits.max_images} are needed")
            )
        seen: set[str] = set()
        for index, item in enumerate(files):
            file_name, size = item["name"], item["size"]
            suffix = "." + file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
            where = f"files[{index}]"
            if rules.is_hidden_or_nested(file_name) or suffix not in CONTENT_TYPES:
                problems.append(FieldError(where, f"{file_name}: only .jpg, .jpeg or .png photos can be used"))
            elif file_name in seen:
                problems.append(FieldError(where, f"{file_name}: two files have this name"))
            elif size > limits.max_image_bytes:
                problems.append(
                    FieldError(
                        where,
                        f"{file_name}: {size / 1_048_576:.1f} MB; at most "
                        f"{limits.max_image_bytes // 1_048_576} MB per photo",
                    )
                )
            seen.add(file_name)
        if problems:
            raise BadRequest("invalid request: " + "; ".join(p.message for p in problems[:10]), fields=tuple(problems))
        self._refuse_if_taken(name)
        token = self.new_token()
        prefix = rules.upload_prefix(name, token)
        expiry_s = self.settings.upload_url_expiry_s
        uploads = []
        for item in files:
            content_type = CONTENT_TYPES["." + item["name"].rsplit(".", 1)[-1].lower()]
            post = self.clients.s3_browser.generate_presigned_post(
                Bucket=self.settings.bucket_name,
                Key=prefix + item["name"],
                Fields={"Content-Type": content_type},
                Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, limits.max_image_bytes]],
                ExpiresIn=expiry_s,
            )
            uploads.append({"name": item["name"], "url": post["url"], "fields": post["fields"]})
        return {
            "dataset": name,
            "upload_id": token,
            "staging_prefix": prefix,
            "expires_in_s": expiry_s,
            "uploads": uploads,
        }

    # ---- POST /datasets/{name}/commit ----

    def commit(self, name: str, body: Any) -> dict[str, Any]:
        if rules.dataset_name_problem(name):
            raise NotFound(f"no dataset upload named {name!r}")
        request = spec.validate(COMMIT_SCHEMA, body)
        token = request["upload_id"]
        if not set(token) <= _TOKEN_CHARS:
            raise _bad("upload_id", "is not an upload id answered by POST /datasets")
        self._check_prompts(request)
        self._claim(name)
        try:
            return self._commit(name, token, request)
        finally:
            self._release(name)

    def _commit(self, name: str, token: str, request: dict[str, Any]) -> dict[str, Any]:
        prefix = rules.upload_prefix(name, token)
        staged = self._staged(prefix)
        if not staged:
            if self._taken(name):
                raise Conflict(
                    f"datasets/{name}/ exists already: this upload ({token}) was committed, or another "
                    "one took the name; nothing was changed"
                )
            raise NotFound(
                f"nothing was uploaded for {name!r} under upload {token} (or it expired): "
                "start again with POST /datasets"
            )
        self._refuse_if_taken(name)
        info = dataset_info(request["instance_prompt"], request.get("class_prompt"))
        files = self._map(
            lambda item: rules.DatasetFile(item[0], item[1], self._header(prefix + item[0], item[1])),
            sorted(staged.items()),
        )
        verdict = self.judge.judge(name, files, lambda: info)
        if not verdict.valid:
            self._delete(list(staged), prefix)
            raise DatasetRefused(verdict.reasons, verdict.warnings)
        keys = self._copy(name, prefix, verdict.image_names)
        info_key = f"{rules.DATASETS_PREFIX}{name}/{rules.DATASET_INFO_FILE}"
        try:
            self.clients.s3.put_object(
                Bucket=self.settings.bucket_name,
                Key=info_key,
                Body=info,
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as error:
            if error_code(error) not in _PRECONDITION_FAILED:
                raise
            raise Conflict(f"{info_key} appeared meanwhile; nothing was overwritten") from None
        self._delete(list(staged), prefix)
        return {
            "dataset": name,
            "images": verdict.image_names,
            "keys": keys + [info_key],
            "instance_prompt": verdict.instance_prompt,
            "class_prompt": verdict.class_prompt,
            "warnings": verdict.warnings,
        }

    def _claim(self, name: str) -> None:
        """Hold the name for this commit, or answer 409 while another commit of it runs."""
        bucket, key = self.settings.bucket_name, commit_claim_key(name)
        busy = Conflict(
            f"dataset {name!r} is being committed by another request (a second click or a retry); this "
            f"one changed nothing: wait for that one's answer, or try again in {COMMIT_CLAIM_STALE_S} s"
        )
        try:
            self.clients.s3.put_object(Bucket=bucket, Key=key, Body=b"", IfNoneMatch="*")
            return
        except ClientError as error:
            if error_code(error) not in _WRITE_RACED:
                raise
        try:
            held = self.clients.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error_code(error) not in _HEAD_GONE:
                raise
            raise busy from None  # released just now: that commit ended, its answer says how
        if self.clock() - held["LastModified"].timestamp() < COMMIT_CLAIM_STALE_S:
            raise busy
        try:  # its commit died (the function was stopped): this one takes the claim over
            self.clients.s3.put_object(Bucket=bucket, Key=key, Body=b"", IfMatch=held["ETag"])
        except ClientError as error:
            if error_code(error) not in _WRITE_RACED + _GONE:
                raise
            raise busy from None  # another commit took it over first

    def _release(self, name: str) -> None:
        try:
            self.clients.s3.delete_object(Bucket=self.settings.bucket_name, Key=commit_claim_key(name))
        except ClientError:
            pass  # left behind, it is taken over once stale (COMMIT_CLAIM_STALE_S)

    def _map(self, function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        with ThreadPoolExecutor(max_workers=S3_WORKERS) as pool:
            return list(pool.map(function, items))

    def _staged(self, prefix: str) -> dict[str, int]:
        found: dict[str, int] = {}
        pages = self.clients.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.settings.bucket_name, Prefix=prefix
        )
        for page in pages:
            found.update({o["Key"][len(prefix) :]: o["Size"] for o in page.get("Contents", [])})
        return found

    def _header(self, key: str, size: int) -> bytes:
        if size == 0:
            return b""
        answer = self.clients.s3.get_object(
            Bucket=self.settings.bucket_name, Key=key, Range=f"bytes=0-{rules.HEADER_BYTES - 1}"
        )
        return answer["Body"].read()

    def _copy(self, name: str, prefix: str, image_names: list[str]) -> list[str]:
        bucket = self.settings.bucket_name

        def copy(image: str) -> str:
            key = f"{rules.DATASETS_PREFIX}{name}/{image}"
            try:
                # IfNoneMatch: S3 refuses (412) a copy onto an existing key: nothing is overwritten.
                self.clients.s3.copy_object(
                    Bucket=bucket, Key=key, IfNoneMatch="*", CopySource={"Bucket": bucket, "Key": prefix + image}
                )
            except ClientError as error:
                if error_code(error) in _PRECONDITION_FAILED:
                    raise Conflict(f"{key} appeared meanwhile; nothing was overwritten") from None
                if error_code(error) in _GONE:
                    raise Conflict(
                        f"the staged {image} is gone (committed or expired meanwhile): nothing was "
                        "overwritten; see GET /models, or start again with POST /datasets"
                    ) from None
                raise
            return key

        return self._map(copy, image_names)

    def _delete(self, names: list[str], prefix: str) -> None:
        for start in range(0, len(names), 1000):
            chunk = names[start : start + 1000]
            self.clients.s3.delete_objects(
                Bucket=self.settings.bucket_name,
                Delete={"Objects": [{"Key": prefix + n} for n in chunk], "Quiet": True},
            )
