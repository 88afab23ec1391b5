"""The committed JumpStart lock file: URIs and default hyperparameters, keyed by region.

`stacks/training/jumpstart.lock.json` is written by `scripts/refresh_jumpstart_lock.py` (by hand with
`make refresh-lock`, or by `make deploy` with credentials for the region it deploys to, when
`staleness` says so). The stack turns its per-region part into a CloudFormation mapping, so one
template works in every listed region and the values are looked up by `AWS::Region` at deploy time.
`resolved_regions` records, per region, when and for which model version its entry was read from
JumpStart's metadata; a region without it holds last-known values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping, Optional

from aws_cdk import Aws, CfnMapping, Stack, Token
from constructs import Construct

from stacks.config import JUMPSTART_LOCK_FILE as LOCK_FILE
from stacks.config import JUMPSTART_LOCK_MAX_AGE_DAYS, ConfigError

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# Mapping attribute names (CloudFormation allows only letters and digits) -> lock file fields.
_MAPPING_FIELDS = {
    "TrainingImage": "training_image_uri",
    "ScriptUri": "training_script_uri",
    "BaseModelUri": "base_model_uri",
    "InferenceImage": "inference_image_uri",
    "InferenceScriptUri": "inference_script_uri",
}


@dataclass(frozen=True)
class JumpStartLock:
    model_id: str
    model_version: str
    source: str
    resolved_at: str | None
    hyperparameters: dict[str, str]
    """JumpStart's defaults, then this project's own choices (`project_hyperparameters`)."""
    metric_definitions: list[dict[str, str]]
    regions: dict[str, dict[str, str]]
    inference_environment: dict[str, str]
    """The container environment JumpStart's hosting spec sets (SAGEMAKER_PROGRAM, timeouts, ...)."""
    unresolved: tuple[str, ...] = ()
    """Fields holding last-known values not (yet) read from JumpStart's metadata."""
    resolved_regions: dict[str, dict[str, str]] = field(default_factory=dict)
    """region -> {"resolved_at", "model_version"}: the regions whose entry JumpStart's metadata gave."""

    @classmethod
    def load(cls, path: Path = LOCK_FILE) -> "JumpStartLock":
        data: Mapping[str, Any] = json.loads(path.read_text())
        hyperparameters = dict(data["hyperparameters"])
        hyperparameters.update(data.get("project_hyperparameters", {}).get("values", {}))
        return cls(
            model_id=data["model_id"],
            model_version=data["model_version"],
            source=data["source"],
            resolved_at=data.get("resolved_at"),
            hyperparameters={k: str(v) for k, v in hyperparameters.items()},
            metric_definitions=list(data["metric_definitions"]),
            regions={region: dict(values) for region, values in data["regions"].items()},
            inference_environment={k: str(v) for k, v in data["inference_environment"].items()},
            unresolved=tuple(data.get("unresolved", {}).get("fields", ())),
            resolved_regions={region: dict(r) for region, r in data.get("resolved_regions", {}).items()},
        )

    def staleness(self, region: str, now: datetime) -> Optional[str]:
        """Why `region`'s entry must be resolved from JumpStart's metadata before a deploy; None: it is
        fresh (resolved for the lock's model version less than JUMPSTART_LOCK_MAX_AGE_DAYS ago)."""
        if region not in self.regions:
            return f"the lock has no entry for {region}"
        if self.resolved_at is None or self.unresolved:
            return "the lock holds last-known values, never resolved from JumpStart's metadata"
        resolved = self.resolved_regions.get(region)
        if resolved is None:
            return f"{region}'s entry holds last-known values, never resolved from JumpStart's metadata"
        if resolved.get("model_version") != self.model_version:
            return (
                f"{region} was resolved for version {resolved.get('model_version')}, the lock is at "
                f"{self.model_version}"
            )
        age = now - datetime.strptime(resolved["resolved_at"], TIMESTAMP_FORMAT).replace(tzinfo=now.tzinfo)
        if age > timedelta(days=JUMPSTART_LOCK_MAX_AGE_DAYS):
            return f"{region} was resolved {age.days} days ago (more than {JUMPSTART_LOCK_MAX_AGE_DAYS})"
        return None


class JumpStartArtifacts(Construct):
    """The lock file's per-region values as deploy-time lookups.

    Attributes (tokens resolved by region): training_image, script_uri, base_model_uri,
    inference_image, inference_script_uri, `object_arns` (the two S3 objects the training job
    reads), `inference_script_arn` (the tarball the packaging step reads), and
    `bucket_arn` / `listed_prefix`: SageMaker lists the base model channel (S3Prefix) with the
    job's role, with exactly that key as the prefix.
    """

    def __init__(self, scope: Construct, construct_id: str, *, lock: JumpStartLock) -> None:
        super().__init__(scope, construct_id)
        stack_region = Stack.of(self).region
        if not Token.is_unresolved(stack_region) and stack_region not in lock.regions:
            raise ConfigError(
                "region",
                stack_region,
                f"the JumpStart lock file has no entry for it (regions: {', '.join(sorted(lock.regions))}); "
                "run scripts/refresh_jumpstart_lock.py --region " + stack_region,
            )
        region = Aws.REGION
        mapping_values = {
            name: {attr: values[field] for attr, field in _MAPPING_FIELDS.items()}
            | {
                "ScriptObject": _s3_object(values["training_script_uri"]),
                "BaseModelObject": _s3_object(values["base_model_uri"]),
                "BaseModelBucket": _s3_object(values["base_model_uri"]).split("/", 1)[0],
                "BaseModelKey": _s3_object(values["base_model_uri"]).split("/", 1)[1],
                "InferenceScriptObject": _s3_object(values["inference_script_uri"]),
            }
            for name, values in lock.regions.items()
        }
        self.mapping = CfnMapping(self, "Regions", mapping=mapping_values)
        self.training_image = self.mapping.find_in_map(region, "TrainingImage")
        self.script_uri = self.mapping.find_in_map(region, "ScriptUri")
        self.base_model_uri = self.mapping.find_in_map(region, "BaseModelUri")
        self.inference_image = self.mapping.find_in_map(region, "InferenceImage")
        self.inference_script_uri = self.mapping.find_in_map(region, "InferenceScriptUri")
        self.inference_script_arn = (
            f"arn:{Aws.PARTITION}:s3:::{self.mapping.find_in_map(region, 'InferenceScriptObject')}"
        )
        self.object_arns = [
            f"arn:{Aws.PARTITION}:s3:::{self.mapping.find_in_map(region, 'ScriptObject')}",
            f"arn:{Aws.PARTITION}:s3:::{self.mapping.find_in_map(region, 'BaseModelObject')}",
        ]
        self.bucket_arn = f"arn:{Aws.PARTITION}:s3:::{self.mapping.find_in_map(region, 'BaseModelBucket')}"
        self.listed_prefix = self.mapping.find_in_map(region, "BaseModelKey")


def _s3_object(uri: str) -> str:
    """s3://bucket/key -> bucket/key"""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI in the JumpStart lock file: {uri}")
    return uri[len("s3://") :]
