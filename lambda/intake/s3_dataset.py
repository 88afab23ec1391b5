"""Reads one dataset from S3: its snapshot (the exact objects) and the bytes the rules need."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Optional

from dreambooth_shared import dataset_rules as rules
from dreambooth_shared.contract import MODELS_PREFIX, STAGING_PREFIX

# A listing bigger than this is refused: no sensible DreamBooth dataset comes near it. The object
# list itself never travels through Step Functions (see `store_manifest`).
MAX_OBJECTS = 500
MANIFEST_FILE = "snapshot.json"
REPORT_FILE = "dataset-report.json"


class ManifestChanged(RuntimeError):
    """The stored object list no longer matches the snapshot's hash (someone rewrote it)."""


def take_snapshot(
    s3: Any, bucket: str, dataset: str, now: Optional[datetime] = None, settings: str = ""
) -> dict[str, Any]:
    """List `datasets/<dataset>/` and name the model version this snapshot would become.

    `objects` holds every file (the validation reports the skipped ones); the hash is made of the
    training files only (images and dataset_info.json, see rules.is_training_file) and `settings`
    (the configured default prompts and hyperparameters), so a .DS_Store or notes.txt added to a
    trained dataset leaves it "already trained".
    """
    prefix = f"{rules.DATASETS_PREFIX}{dataset}/"
    objects: list[dict[str, Any]] = []
    truncated = False
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if rules.is_folder_placeholder(item["Key"]):
                continue  # "folder" placeholder objects made by consoles
            if len(objects) >= MAX_OBJECTS:
                truncated = True
                break
            objects.append({"key": item["Key"], "etag": item["ETag"].strip('"'), "size": item["Size"]})
    now = now or datetime.now(timezone.utc)
    version = now.strftime("%Y%m%d%H%M%S")
    return {
        "dataset": dataset,
        "snapshotHash": rules.snapshot_hash(
            ((o["key"], o["etag"], o["size"]) for o in objects if rules.is_training_file(o["key"][len(prefix) :])),
            settings,
        ),
        "objects": objects,
        "objectCount": len(objects),
        "truncated": truncated,
        "version": version,
        "modelId": f"{dataset}-{version}",
        "trainingJobName": f"{dataset}-{version}",
        "createdAt": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "outputUri": f"s3://{bucket}/{model_prefix(dataset, version)}",
    }


def model_prefix(dataset: str, version: str) -> str:
    """Where one model version's files go: its snapshot manifest, dataset report, training output."""
    return f"{MODELS_PREFIX}{dataset}/{version}/"


def store_manifest(s3: Any, bucket: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Write the snapshot's object list to S3; return the snapshot without it (for the state).

    500 keys of up to 1,024 bytes would pass Step Functions' 256 KiB state limit, so the state
    carries the count, the hash and the manifest's key instead.
    """
    key = model_prefix(snapshot["dataset"], snapshot["version"]) + MANIFEST_FILE
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(snapshot["objects"]).encode(), ContentType="application/json")
    # The snapshot hash covers only the training files (rules.is_training_file); the manifest's own
    # hash covers every object it lists, so a changed manifest is always noticed.
    return {
        **{k: v for k, v in snapshot.items() if k != "objects"},
        "manifestKey": key,
        "manifestHash": _objects_hash(snapshot["objects"]),
    }


def _objects_hash(objects: list[dict[str, Any]]) -> str:
    return rules.snapshot_hash((o["key"], o["etag"], o["size"]) for o in objects)


def load_manifest(s3: Any, bucket: str, snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot with its object list read back from `manifestKey`, checked against its hash."""
    objects = json.loads(s3.get_object(Bucket=bucket, Key=snapshot["manifestKey"])["Body"].read())
    if _objects_hash(objects) != snapshot["manifestHash"]:
        raise ManifestChanged(f"{snapshot['manifestKey']} does not match snapshot {snapshot['snapshotHash']}")
    return {**snapshot, "objects": objects}


def store_report(s3: Any, bucket: str, snapshot: dict[str, Any], report: dict[str, Any]) -> str:
    """Write the full dataset report (every reason and warning) beside the model; return its URI."""
    key = model_prefix(snapshot["dataset"], snapshot["version"]) + REPORT_FILE
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(report, indent=2).encode(), ContentType="application/json")
    return f"s3://{bucket}/{key}"


def stage(s3: Any, bucket: str, snapshot: dict[str, Any], image_names: list[str], info: dict[str, str]) -> str:
    """Copy the accepted images and a dataset_info.json with the prompts used to the staging prefix.

    The training channel then holds exactly the judged snapshot (files uploaded later, or skipped
    ones such as .DS_Store, never reach the job), and the user's folder is never written to.
    Returns the channel's S3 URI.
    """
    source_prefix = f"{rules.DATASETS_PREFIX}{snapshot['dataset']}/"
    target_prefix = staging_prefix(snapshot["dataset"], snapshot["version"])
    etags = {obj["key"]: obj["etag"] for obj in snapshot["objects"]}

    def copy(name: str) -> None:
        key = source_prefix + name
        s3.copy_object(
            Bucket=bucket,
            Key=target_prefix + name,
            CopySource={"Bucket": bucket, "Key": key},
            CopySourceIfMatch=etags[key],
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(copy, image_names))
    s3.put_object(
        Bucket=bucket,
        Key=target_prefix + rules.DATASET_INFO_FILE,
        Body=json.dumps(info, indent=2).encode(),
        ContentType="application/json",
    )
    return f"s3://{bucket}/{target_prefix}"


def staging_prefix(dataset: str, version: str) -> str:
    return f"{STAGING_PREFIX}{dataset}/{version}/"


def staged_names(s3: Any, bucket: str, dataset: str, version: str) -> list[str]:
    """The files of a staged snapshot (what its training job read), names relative to its folder."""
    prefix = staging_prefix(dataset, version)
    names = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        names.extend(item["Key"][len(prefix) :] for item in page.get("Contents", []))
    return names


def read_head(s3: Any, bucket: str, key: str, size: int, etag: str) -> bytes:
    if size == 0:
        return b""
    response = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{min(size, rules.HEADER_BYTES) - 1}", IfMatch=etag)
    return response["Body"].read()


def read_tail(s3: Any, bucket: str, key: str, size: int, etag: str, head: bytes) -> bytes:
    """The last TAIL_BYTES (a suffix range); no second read when the head already holds the file."""
    if len(head) >= size:
        return head[-rules.TAIL_BYTES :]
    response = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{rules.TAIL_BYTES}", IfMatch=etag)
    return response["Body"].read()


def load_files(
    s3: Any, bucket: str, snapshot: dict[str, Any], max_image_bytes: int
) -> tuple[list[rules.DatasetFile], Optional[bytes]]:
    """First and last bytes of every snapshot image, exactly as snapshotted (If-Match on the ETag)."""
    prefix = f"{rules.DATASETS_PREFIX}{snapshot['dataset']}/"
    info_bytes: Optional[bytes] = None
    candidates, files = [], []
    for obj in snapshot["objects"]:
        name = obj["key"][len(prefix) :]
        if name == rules.DATASET_INFO_FILE:
            info_bytes = _read_whole(s3, bucket, obj)
        elif not rules.is_training_file(name):
            files.append(rules.DatasetFile(name=name, size=obj["size"]))
        elif obj["size"] > max_image_bytes:
            files.append(rules.DatasetFile(name=name, size=obj["size"]))  # refused on size, unread
        else:
            candidates.append((name, obj))

    def head(item: tuple[str, dict[str, Any]]) -> rules.DatasetFile:
        name, obj = item
        header = read_head(s3, bucket, obj["key"], obj["size"], obj["etag"])
        tail = read_tail(s3, bucket, obj["key"], obj["size"], obj["etag"], header)
        return rules.DatasetFile(name=name, size=obj["size"], header=header, tail=tail)

    with ThreadPoolExecutor(max_workers=8) as pool:
        files.extend(pool.map(head, candidates))
    return files, info_bytes


def _read_whole(s3: Any, bucket: str, obj: dict[str, Any]) -> bytes:
    if obj["size"] > rules.MAX_DATASET_INFO_BYTES:
        return b" " * (rules.MAX_DATASET_INFO_BYTES + 1)  # the rules report the size
    return s3.get_object(Bucket=bucket, Key=obj["key"], IfMatch=obj["etag"])["Body"].read()
