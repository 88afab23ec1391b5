"""JumpStart as the deploy meets it, offline: the SDK reads the metadata under tests/fixtures/jumpstart/
(its local-metadata mode), and moto holds the artifacts that metadata names (the
`jumpstart-cache-prod-<region>` bucket's objects, the images in ECR registry 763104351884)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterable

from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "jumpstart"
MODEL_ID = "model-txt2img-stabilityai-stable-diffusion-v2-1-base"
SPEC = FIXTURE / "specs" / f"{MODEL_ID}-9.9.1.json"
MANIFEST_ENV = "AWS_JUMPSTART_MANIFEST_LOCAL_ROOT_DIR_OVERRIDE"
SPECS_ENV = "AWS_JUMPSTART_SPECS_LOCAL_ROOT_DIR_OVERRIDE"


def local_metadata(monkeypatch: Any, folder: Path = FIXTURE) -> None:
    """The SDK reads `folder` instead of JumpStart's buckets; its per-process cache starts empty."""
    from sagemaker.core.jumpstart.accessors import JumpStartModelsAccessor

    monkeypatch.setenv(MANIFEST_ENV, str(folder))
    monkeypatch.setenv(SPECS_ENV, str(folder))
    JumpStartModelsAccessor.reset_cache()


def metadata_copy(tmp_path: Path, **changes: Any) -> Path:
    """The fixture's metadata with the model spec changed (e.g. deprecated=True), in a folder of its own."""
    folder = tmp_path / "jumpstart-metadata"
    shutil.copytree(FIXTURE, folder)
    spec = folder / SPEC.relative_to(FIXTURE)
    spec.write_text(json.dumps({**json.loads(spec.read_text()), **changes}, indent=2))
    return folder


def artifacts(region: str) -> dict[str, str]:
    """What the fixture's metadata resolves to in `region` (the lock fields' values)."""
    spec = json.loads(SPEC.read_text())
    bucket = f"s3://jumpstart-cache-prod-{region}/"

    def image(variants: str) -> str:
        return spec[variants]["regional_aliases"][region]["gpu_ecr_uri_1"]

    return {
        "training_image_uri": image("training_instance_type_variants"),
        "training_script_uri": bucket + spec["training_script_key"],
        "base_model_uri": bucket + spec["training_artifact_key"],
        "inference_image_uri": image("hosting_instance_type_variants"),
        "inference_script_uri": bucket + spec["hosting_script_key"],
    }


PUBLISHER_ACCOUNT = "763104351884"
"""AWS's account, which owns the images' registry; here it also owns the fake JumpStart bucket, so the
bucket is not one of the deployer's (bucket-quota checks count those)."""


def publisher(region: str) -> Any:
    """A boto3 session in AWS's account (moto: credentials of a role assumed there)."""
    import boto3

    credentials = boto3.client("sts", region_name=region).assume_role(
        RoleArn=f"arn:aws:iam::{PUBLISHER_ACCOUNT}:role/jumpstart-publisher", RoleSessionName="publisher"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )


def publish(
    session: Any, region: str = "us-east-1", values: dict[str, str] | None = None, leave_out: Iterable[str] = ()
) -> dict[str, str]:
    """Put the artifacts of `values` (default: the fixture's) into moto, except the fields in `leave_out`.

    The S3 objects go into a bucket of AWS's account, which moto lets the deployer read as AWS does
    (the JumpStart bucket is public). moto's ECR finds a repository only in the caller's own backend,
    so the repositories are created there, under registry id 763104351884 as the URIs name it."""
    values = values or artifacts(region)
    leave_out = set(leave_out)
    s3 = publisher(region).client("s3", region_name=region)
    ecr = session.client("ecr", region_name=region)
    for name, uri in values.items():
        if name in leave_out:
            continue
        if uri.startswith("s3://"):
            bucket, _, key = uri[len("s3://") :].partition("/")
            try:
                s3.create_bucket(
                    Bucket=bucket,
                    **({} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}),
                )
            except (s3.exceptions.BucketAlreadyExists, s3.exceptions.BucketAlreadyOwnedByYou):
                pass  # published earlier (or by a test, as the sample photos' bucket)
            s3.put_object(Bucket=bucket, Key=(key + "model.safetensors") if key.endswith("/") else key, Body=b"x")
        else:
            registry = uri.split(".", 1)[0]
            repository, _, tag = uri.partition("/")[2].partition(":")
            try:
                ecr.create_repository(registryId=registry, repositoryName=repository)
            except ecr.exceptions.RepositoryAlreadyExistsException:
                pass
            ecr.put_image(
                registryId=registry,
                repositoryName=repository,
                imageTag=tag,
                imageManifest=json.dumps({"schemaVersion": 2, "tag": tag}),
                imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json",
            )
    return values
