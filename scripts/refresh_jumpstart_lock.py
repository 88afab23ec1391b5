"""Regenerate stacks/training/jumpstart.lock.json from SageMaker JumpStart's own metadata.

    python -m scripts.refresh_jumpstart_lock [--region us-east-1 ...] [--model-version 2.0.9]

Needs AWS credentials: the sagemaker SDK reads JumpStart's manifest and model specs from the
`jumpstart-cache-prod-<region>` buckets. Without them (tests, offline), point
AWS_JUMPSTART_MANIFEST_LOCAL_ROOT_DIR_OVERRIDE and AWS_JUMPSTART_SPECS_LOCAL_ROOT_DIR_OVERRIDE at a
folder with models_manifest.json and the spec files it names: the SDK then reads those instead.

For every region it resolves the training image, training script and base-model URIs, the
inference image and the inference script (which the packaging step adds to a trained model); the
hosting container's environment, the default hyperparameters and metric definitions come from the model's spec.
`project_hyperparameters` (this project's own choices) are kept as they are.

`make deploy` with credentials calls `ensure_region` for the region it deploys to: it resolves that
region's entry when the lock says it is stale (`JumpStartLock.staleness`: never resolved, or longer
ago than stacks/config.py's JUMPSTART_LOCK_MAX_AGE_DAYS; or resolved for other instance types than
the deploy's), for the lock's own model version (`make refresh-lock` is what moves the lock to the
newest version); refuses a version JumpStart marks deprecated (read from the model's specs at every
deploy the SDK is installed for, fresh lock or not) or does not serve there; checks that every artifact exists (S3 HeadObject, or
ListObjectsV2 for a prefix; ECR BatchGetImage, the call a pull makes, for the images) with the
deployer's credentials; and only then writes the lock.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from botocore.exceptions import ClientError

from dreambooth_shared.contract import error_code
from stacks.config import JUMPSTART_LOCK_FILE as LOCK_FILE

ROOT = Path(__file__).resolve().parent.parent
MODEL_ID = "model-txt2img-stabilityai-stable-diffusion-v2-1-base"
# Hyperparameters that wire in the training script: the pipeline sets them itself.
_CONTAINER_HYPERPARAMETERS = ("sagemaker_program", "sagemaker_submit_directory")
REQUIREMENTS = ROOT / "requirements-lock.txt"
"""Where the SDK the resolution needs (sagemaker-core) is pinned."""
SDK_MODULE = "sagemaker.core"
# The lock fields that name artifacts, in the order they are verified.
S3_FIELDS = ("training_script_uri", "base_model_uri", "inference_script_uri")
IMAGE_FIELDS = ("training_image_uri", "inference_image_uri")


class JumpStartUnavailable(RuntimeError):
    """The model, its version or one of its artifacts cannot be used in the region. str(): one line with
    what was found and what to do (`problem`, `todo`); the lock file was not written."""

    def __init__(self, problem: str, todo: str):
        super().__init__(f"{problem}: nothing was deployed and the lock file is unchanged. To fix: {todo}")
        self.problem, self.todo = problem, todo


def sdk_installed() -> bool:
    """Whether the SDK the lock is resolved with (sagemaker.core, requirements-lock.txt) can be imported."""
    import importlib.util

    importlib.invalidate_caches()
    try:
        return importlib.util.find_spec(SDK_MODULE) is not None
    except ModuleNotFoundError:  # no `sagemaker` package at all
        return False


@dataclass(frozen=True)
class InstanceTypes:
    """What the images are resolved for: the training image for the training instance, the inference
    image for the endpoint's (JumpStart's specs map instance families to images)."""

    training: str
    endpoint: str

    @classmethod
    def defaults(cls) -> "InstanceTypes":
        """The stack's defaults (`trainingInstanceType`, `endpointInstanceType`, declared once in stacks/config.py)."""
        from stacks.config import ServingConfig, TrainingConfig

        return cls(TrainingConfig.instance_type, ServingConfig.instance_type)

    @classmethod
    def of(cls, config: Any) -> "InstanceTypes":
        """The types an AppConfig (the deploy's own -c values) trains and serves on."""
        return cls(config.training.instance_type, config.serving.instance_type)


def resolve(
    regions: Sequence[str],
    model_version: str,
    instance_types: Optional[InstanceTypes] = None,
    model_id: str = MODEL_ID,
    sagemaker_session: Any = None,
) -> dict[str, Any]:
    """Everything the lock holds, resolved through the sagemaker SDK (the images for `instance_types`,
    by default the stack's defaults), read with `sagemaker_session`'s credentials (default: the SDK's own
    session).

    Raises JumpStartUnavailable when JumpStart marks the version deprecated, or does not serve the
    model (or this version of it) in a region."""
    with _no_wildcard_notice():
        return _resolve(regions, model_version, instance_types or InstanceTypes.defaults(), model_id, sagemaker_session)


@contextmanager
def _no_wildcard_notice() -> Iterator[None]:
    """The SDK warns on stderr that "*" is a wildcard version; the lock records the version it gave."""
    import logging

    def not_wildcard(record: logging.LogRecord) -> bool:
        return "wildcard version identifier" not in record.getMessage()

    logger = logging.getLogger("sagemaker.jumpstart")
    logger.addFilter(not_wildcard)
    try:
        yield
    finally:
        logger.removeFilter(not_wildcard)


@contextmanager
def _served(model_id: str, model_version: str, region: str, what: str = "") -> Iterator[None]:
    """The SDK's errors for a model, version or region JumpStart does not serve, as JumpStartUnavailable."""
    try:
        yield
    except JumpStartUnavailable:
        raise
    except (KeyError, ValueError) as error:
        # KeyError: "Unable to find model manifest for ... with version ..."; ValueError: "No training
        # ECR configuration found ... in <region>" (DeprecatedJumpStartModelError is one too).
        raise JumpStartUnavailable(
            f"JumpStart does not serve {model_id} version {model_version}{what} in {region} ({_first_sentence(error)})",
            f"deploy to a region JumpStart serves it in (AWS_REGION), or run "
            f'`make refresh-lock ARGS="--region {region}"` to move the lock to the newest version there',
        ) from None
    except ClientError as error:
        # The SDK reads the manifest and specs from jumpstart-cache-prod-<region> with these credentials.
        code = error_code(error)
        if code in ("NoSuchBucket", "NoSuchKey", "404"):
            raise JumpStartUnavailable(
                f"JumpStart has no metadata in {region} ({code} on jumpstart-cache-prod-{region})",
                "deploy to a region JumpStart serves (AWS_REGION)",
            ) from None
        if code in ("AccessDenied", "403"):
            raise JumpStartUnavailable(
                f"these credentials may not read JumpStart's metadata in {region} ({code})",
                f"allow s3:GetObject and s3:ListBucket on arn:aws:s3:::jumpstart-cache-prod-{region} (and /*) "
                "for the deploying user",
            ) from None
        raise


def model_specs(region: str, model_id: str, model_version: str, sagemaker_session: Any = None) -> Any:
    """JumpStart's specs of the model version in `region`; JumpStartUnavailable when deprecated or not served."""
    from sagemaker.core.jumpstart.accessors import JumpStartModelsAccessor

    with _served(model_id, model_version, region):
        specs = JumpStartModelsAccessor.get_model_specs(
            region=region,
            model_id=model_id,
            version=model_version,
            **({"s3_client": sagemaker_session.s3_client} if sagemaker_session is not None else {}),
        )
    if specs.deprecated:
        raise _deprecated(model_id, model_version, specs, region)
    return specs


def _resolve(
    regions: Sequence[str], model_version: str, types: InstanceTypes, model_id: str, sagemaker_session: Any
) -> dict[str, Any]:
    from sagemaker.core import hyperparameters, image_uris, model_uris, script_uris

    common = dict(model_id=model_id, model_version=model_version)
    session = {"sagemaker_session": sagemaker_session} if sagemaker_session is not None else {}
    entries = {}
    specs = None
    for region in regions:
        specs = model_specs(region, model_id, model_version, sagemaker_session)
        with _served(model_id, model_version, region, f" for {types.training} / {types.endpoint}"):
            entries[region] = {
                "training_image_uri": image_uris.retrieve(
                    framework=None,
                    region=region,
                    image_scope="training",
                    instance_type=types.training,
                    **common,
                    **session,
                ),
                "training_script_uri": script_uris.retrieve(
                    region=region, script_scope="training", **common, **session
                ),
                "base_model_uri": model_uris.retrieve(region=region, model_scope="training", **common, **session),
                "inference_image_uri": image_uris.retrieve(
                    framework=None,
                    region=region,
                    image_scope="inference",
                    instance_type=types.endpoint,
                    **common,
                    **session,
                ),
                "inference_script_uri": script_uris.retrieve(
                    region=region, script_scope="inference", **common, **session
                ),
            }
    defaults = hyperparameters.retrieve_default(region=regions[0], instance_type=types.training, **common, **session)
    return {
        "training_instance_type": types.training,
        "endpoint_instance_type": types.endpoint,
        "model_version": specs.version,
        "hyperparameters": {k: str(v) for k, v in defaults.items() if k not in _CONTAINER_HYPERPARAMETERS},
        "metric_definitions": list(specs.metrics or []),
        # The hosting spec's container environment (SAGEMAKER_PROGRAM, SAGEMAKER_SUBMIT_DIRECTORY, ...).
        "inference_environment": {
            v.name: str(v.default) for v in specs.inference_environment_variables if v.default is not None
        },
        "regions": entries,
    }


def _first_sentence(error: BaseException) -> str:
    text = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
    return text.split(". ")[0].rstrip(".")


def _deprecated(model_id: str, requested: str, specs: Any, region: str) -> JumpStartUnavailable:
    why = f" ({specs.deprecated_message.strip().rstrip('.')})" if specs.deprecated_message else ""
    if requested == "*":
        todo = (
            "JumpStart offers no newer version to move to: deploy to a region where it still serves one "
            "(AWS_REGION); an endpoint deployed earlier keeps serving"
        )
    else:
        todo = (
            f'move the lock to the newest version JumpStart serves with `make refresh-lock ARGS="--region '
            f'{region}"`, then deploy again'
        )
    return JumpStartUnavailable(f"JumpStart marks {model_id} version {specs.version} deprecated in {region}{why}", todo)


def apply(lock: dict[str, Any], resolved: dict[str, Any], now: datetime, by: str) -> dict[str, Any]:
    """The lock with what `resolve` returned written in; `resolved_regions` records each resolved region."""
    # The stack's reader is imported where it is needed only: it loads aws_cdk (a Node process).
    from stacks.training.jumpstart_lock import TIMESTAMP_FORMAT

    lock = json.loads(json.dumps(lock))
    stamp = now.strftime(TIMESTAMP_FORMAT)
    version = resolved["model_version"]
    lock.update(
        model_version=version,
        source=(
            f"resolved with sagemaker.core (JumpStart metadata) for {lock['model_id']} version {version} by {by}; "
            "a region not in resolved_regions holds last-known values"
        ),
        resolved_at=stamp,
        training_instance_type=resolved["training_instance_type"],
        endpoint_instance_type=resolved["endpoint_instance_type"],
        hyperparameters=resolved["hyperparameters"],
        metric_definitions=resolved["metric_definitions"] or lock["metric_definitions"],
        inference_environment=resolved["inference_environment"] or lock["inference_environment"],
    )
    if resolved["inference_environment"]:
        lock.pop("unresolved", None)  # every model-level field now comes from JumpStart's metadata
    lock["regions"] = {**lock["regions"], **resolved["regions"]}
    lock["resolved_regions"] = {
        **lock.get("resolved_regions", {}),
        **{
            region: {
                "resolved_at": stamp,
                "model_version": version,
                "training_instance_type": resolved["training_instance_type"],
                "endpoint_instance_type": resolved["endpoint_instance_type"],
            }
            for region in resolved["regions"]
        },
    }
    return lock


def write(lock_path: Path, lock: dict[str, Any]) -> None:
    lock_path.write_text(json.dumps(lock, indent=2) + "\n")


def refresh(
    lock_path: Path, regions: Optional[Sequence[str]], model_version: str, now: Optional[datetime] = None
) -> dict[str, Any]:
    lock = json.loads(lock_path.read_text())
    regions = list(regions or sorted(lock["regions"]))
    resolved = resolve(regions, model_version, model_id=lock["model_id"])
    lock = apply(lock, resolved, now or datetime.now(timezone.utc), "scripts/refresh_jumpstart_lock.py")
    write(lock_path, lock)
    return lock


# ---- at deploy: resolve the target region when stale, verify its artifacts -------------------------


FOUND, MISSING, NOT_VERIFIED = "found", "missing", "not verified"


@dataclass(frozen=True)
class ArtifactCheck:
    field: str
    """The lock field (training_image_uri, base_model_uri, ...)."""
    uri: str
    status: str
    """FOUND, MISSING or NOT_VERIFIED (the deployer may not read it: AccessDenied)."""
    detail: str


@dataclass
class RegionResolution:
    """What `ensure_region` did for one region."""

    region: str
    model_version: str
    stale: Optional[str]
    """Why the region was resolved now (JumpStartLock.staleness); None: the lock was fresh."""
    checks: list[ArtifactCheck] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    """Lock fields whose value the resolution changed (region entry fields and model_version)."""
    written: bool = False
    deprecation_checked: bool = False
    """Whether JumpStart's specs were read for this version and region (they need the SageMaker SDK)."""

    @property
    def unverified(self) -> list[ArtifactCheck]:
        return [c for c in self.checks if c.status == NOT_VERIFIED]

    def summary(self) -> str:
        found = sum(c.status == FOUND for c in self.checks)
        what = (
            f"resolved from JumpStart's metadata ({self.stale})"
            if self.stale
            else "resolved earlier, within the lock's age limit"
        )
        changed = f"; changed: {', '.join(self.changed)}" if self.changed else ""
        deprecation = (
            "not deprecated"
            if self.deprecation_checked
            else "deprecation not checked (the SageMaker SDK is not installed)"
        )
        return (
            f"JumpStart lock for {self.region}: version {self.model_version}, {what}{changed}; {deprecation}; "
            f"{found} of {len(self.checks)} artifacts found"
        )


def _s3_location(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def check_s3_artifact(s3: Any, name: str, uri: str) -> ArtifactCheck:
    """HeadObject for an object; ListObjectsV2 for a prefix (JumpStart's 2.x artifacts can be uncompressed
    prefixes ending in `/`), and for an object S3 answers 403 on (it does so for a missing key when the
    caller may not list the bucket)."""
    bucket, key = _s3_location(uri)
    if not key.endswith("/"):
        try:
            s3.head_object(Bucket=bucket, Key=key)
            return ArtifactCheck(name, uri, FOUND, "HeadObject")
        except ClientError as error:
            code = error_code(error)
            if code in ("404", "NoSuchKey", "NotFound"):
                return ArtifactCheck(name, uri, MISSING, "HeadObject: 404 Not Found")
            if code not in ("403", "AccessDenied", "Forbidden"):
                raise
    try:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    except ClientError as error:
        code = error_code(error)
        if code == "NoSuchBucket":
            return ArtifactCheck(name, uri, MISSING, f"ListObjectsV2: bucket {bucket} does not exist")
        if code in ("AccessDenied", "403"):
            return ArtifactCheck(name, uri, NOT_VERIFIED, f"ListObjectsV2 on {bucket} denied to these credentials")
        raise
    keys = [o["Key"] for o in listed.get("Contents", [])]
    exists = bool(keys) if key.endswith("/") else key in keys
    return ArtifactCheck(
        name,
        uri,
        FOUND if exists else MISSING,
        f"ListObjectsV2 prefix {key}: {'listed' if exists else 'nothing there'}",
    )


def check_image(ecr: Any, name: str, uri: str) -> ArtifactCheck:
    """BatchGetImage (the manifest read a `docker pull` makes) on the image's registry, repository and tag."""
    registry_host, _, path = uri.partition("/")
    repository, _, tag = path.partition(":")
    registry = registry_host.split(".", 1)[0]
    try:
        answer = ecr.batch_get_image(registryId=registry, repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ClientError as error:
        code = error_code(error)
        if code == "RepositoryNotFoundException":
            return ArtifactCheck(
                name, uri, MISSING, f"BatchGetImage: repository {repository} not in registry {registry}"
            )
        if code in ("AccessDeniedException", "AccessDenied"):
            return ArtifactCheck(
                name,
                uri,
                NOT_VERIFIED,
                "BatchGetImage denied to these credentials (allow ecr:BatchGetImage to check the image)",
            )
        raise
    if answer.get("images"):
        return ArtifactCheck(name, uri, FOUND, "BatchGetImage")
    failures = ", ".join(f.get("failureCode", "?") for f in answer.get("failures", [])) or "no image"
    return ArtifactCheck(name, uri, MISSING, f"BatchGetImage: {failures}")


def verify_artifacts(session: Any, region: str, entry: dict[str, str]) -> list[ArtifactCheck]:
    """Every artifact of one region's entry, read with `session`'s credentials."""
    s3 = session.client("s3", region_name=region)
    ecr = session.client("ecr", region_name=region)
    return [check_s3_artifact(s3, name, entry[name]) for name in S3_FIELDS] + [
        check_image(ecr, name, entry[name]) for name in IMAGE_FIELDS
    ]


def _missing(region: str, missing: Sequence[ArtifactCheck], resolved_now: bool) -> JumpStartUnavailable:
    first = missing[0]
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    if resolved_now:
        todo = (
            f"JumpStart's metadata names an artifact it does not serve in {region}: deploy to another region "
            "(AWS_REGION), or run `make refresh-lock` once JumpStart has fixed it"
        )
    else:
        todo = (
            f'resolve the lock again with `make refresh-lock ARGS="--region {region}"`, then deploy; if it '
            "stays missing, JumpStart no longer serves the model there: choose another region (AWS_REGION)"
        )
    return JumpStartUnavailable(
        f"JumpStart artifact {first.field} {first.uri} is missing in {region} ({first.detail}){more}", todo
    )


def staleness(lock_path: Path, region: str, now: datetime, instance_types: InstanceTypes) -> Optional[str]:
    """JumpStartLock.staleness, or: the region was resolved for other instance types than these."""
    from stacks.training.jumpstart_lock import JumpStartLock

    stale = JumpStartLock.load(lock_path).staleness(region, now)
    if stale:
        return stale
    resolved = json.loads(lock_path.read_text()).get("resolved_regions", {}).get(region, {})
    for kind, wanted in (("training", instance_types.training), ("endpoint", instance_types.endpoint)):
        was = resolved.get(f"{kind}_instance_type")
        if was != wanted:
            return (
                f"{region}'s {kind} image was resolved for {was or 'another instance type'}, the deploy uses {wanted}"
            )
    return None


def ensure_region(
    lock_path: Path,
    session: Any,
    region: str,
    *,
    now: Optional[datetime] = None,
    write_lock: bool = True,
    sagemaker_session: Any = None,
    instance_types: Optional[InstanceTypes] = None,
) -> RegionResolution:
    """Resolve `region` when the lock is stale there (for `instance_types`, default the stack's defaults),
    verify its artifacts, then (write_lock) write the lock. A fresh lock's version is still checked against
    JumpStart's specs for deprecation whenever the SDK is installed (one read per deploy).

    Raises JumpStartUnavailable (one line: what to do) for a deprecated or unserved model version or a
    missing artifact; the lock file is left as it was then. The SDK is needed only when the region is stale.
    """
    now = now or datetime.now(timezone.utc)
    instance_types = instance_types or InstanceTypes.defaults()
    data = json.loads(lock_path.read_text())
    stale = staleness(lock_path, region, now, instance_types)
    resolution = RegionResolution(region=region, model_version=data["model_version"], stale=stale)
    if sagemaker_session is None and (stale or sdk_installed()):
        from sagemaker.core.helper.session_helper import Session

        sagemaker_session = Session(boto_session=session)
    if stale:
        resolved = resolve(
            [region],
            data["model_version"],
            instance_types,
            model_id=data["model_id"],
            sagemaker_session=sagemaker_session,
        )
        before = data["regions"].get(region, {})
        resolution.changed = [name for name, value in resolved["regions"][region].items() if before.get(name) != value]
        if resolved["model_version"] != data["model_version"]:
            resolution.changed.insert(0, f"model_version {data['model_version']} -> {resolved['model_version']}")
        data = apply(data, resolved, now, "make deploy (scripts/deploy.py)")
        resolution.model_version = data["model_version"]
        resolution.deprecation_checked = True
    elif sagemaker_session is not None:
        # Within the age limit JumpStart may still have deprecated the version since.
        with _no_wildcard_notice():
            model_specs(region, data["model_id"], data["model_version"], sagemaker_session)
        resolution.deprecation_checked = True
    resolution.checks = verify_artifacts(session, region, data["regions"][region])
    missing = [c for c in resolution.checks if c.status == MISSING]
    if missing:
        raise _missing(region, missing, resolved_now=bool(stale))
    if stale and write_lock:
        write(lock_path, data)
        resolution.written = True
    return resolution


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--region",
        action="append",
        help="region to resolve (repeatable; default: every region already in the lock file)",
    )
    parser.add_argument("--model-version", default="*", help="JumpStart model version (default: the latest)")
    parser.add_argument("--lock", type=Path, default=LOCK_FILE, help="lock file to rewrite")
    args = parser.parse_args(argv)
    try:
        lock = refresh(args.lock, args.region, args.model_version)
    except Exception as error:  # the SDK raises plain exceptions for missing credentials/metadata
        print(f"Could not resolve JumpStart metadata: {type(error).__name__}: {error}", file=sys.stderr)
        print(
            "The lock file was not changed. Give this shell AWS credentials and a network connection.", file=sys.stderr
        )
        return 1
    print(
        f"{args.lock}: {lock['model_id']} {lock['model_version']}, {len(lock['regions'])} regions, "
        f"resolved at {lock['resolved_at']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
