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
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
LOCK_FILE = ROOT / "stacks" / "training" / "jumpstart.lock.json"
MODEL_ID = "model-txt2img-stabilityai-stable-diffusion-v2-1-base"
# Hyperparameters that wire in the training script: the pipeline sets them itself.
_CONTAINER_HYPERPARAMETERS = ("sagemaker_program", "sagemaker_submit_directory")


def default_instance_type() -> str:
    """The instance type the lock is resolved for: the stack's default training instance
    (`trainingInstanceType`, declared once in stacks/config.py)."""
    from stacks.config import TrainingConfig

    return TrainingConfig.instance_type


def resolve(regions: Sequence[str], model_version: str, instance_type: Optional[str] = None,
            model_id: str = MODEL_ID) -> dict[str, Any]:
    """Everything the lock holds, resolved through the sagemaker SDK (the images for
    `instance_type`, by default the stack's default training instance)."""
    from sagemaker.core import hyperparameters, image_uris, model_uris, script_uris
    from sagemaker.core.jumpstart.accessors import JumpStartModelsAccessor

    instance_type = instance_type or default_instance_type()
    common = dict(model_id=model_id, model_version=model_version)
    specs = JumpStartModelsAccessor.get_model_specs(region=regions[0], model_id=model_id, version=model_version)
    entries = {}
    for region in regions:
        entries[region] = {
            "training_image_uri": image_uris.retrieve(framework=None, region=region, image_scope="training",
                                                      instance_type=instance_type, **common),
            "training_script_uri": script_uris.retrieve(region=region, script_scope="training", **common),
            "base_model_uri": model_uris.retrieve(region=region, model_scope="training", **common),
            "inference_image_uri": image_uris.retrieve(framework=None, region=region, image_scope="inference",
                                                       instance_type=instance_type, **common),
            "inference_script_uri": script_uris.retrieve(region=region, script_scope="inference", **common),
        }
    defaults = hyperparameters.retrieve_default(region=regions[0], instance_type=instance_type, **common)
    return {
        "instance_type": instance_type,
        "model_version": specs.version,
        "hyperparameters": {k: str(v) for k, v in defaults.items() if k not in _CONTAINER_HYPERPARAMETERS},
        "metric_definitions": list(specs.metrics or []),
        # The hosting spec's container environment (SAGEMAKER_PROGRAM, SAGEMAKER_SUBMIT_DIRECTORY, ...).
        "inference_environment": {v.name: str(v.default) for v in specs.inference_environment_variables
                                  if v.default is not None},
        "regions": entries,
    }


def refresh(lock_path: Path, regions: Optional[Sequence[str]], model_version: str,
            now: Optional[datetime] = None) -> dict[str, Any]:
    lock = json.loads(lock_path.read_text())
    regions = list(regions or sorted(lock["regions"]))
    resolved = resolve(regions, model_version, model_id=lock["model_id"])
    now = now or datetime.now(timezone.utc)
    lock.update(
        model_version=resolved["model_version"],
        source=(f"resolved with sagemaker.core (JumpStart metadata) for {lock['model_id']} "
                f"version {resolved['model_version']} by scripts/refresh_jumpstart_lock.py"),
        resolved_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        training_instance_type=resolved["instance_type"],
        hyperparameters=resolved["hyperparameters"],
        metric_definitions=resolved["metric_definitions"] or lock["metric_definitions"],
        inference_environment=resolved["inference_environment"] or lock["inference_environment"],
    )
    if resolved["inference_environment"]:
        lock.pop("unresolved", None)  # every field now comes from JumpStart's metadata
    lock["regions"] = {**lock["regions"], **resolved["regions"]}
    lock_path.write_text(json.dumps(lock, indent=2) + "\n")
    return lock


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--region", action="append", help="region to resolve (repeatable; default: every "
                                                          "region already in the lock file)")
    parser.add_argument("--model-version", default="*", help="JumpStart model version (default: the latest)")
    parser.add_argument("--lock", type=Path, default=LOCK_FILE, help="lock file to rewrite")
    args = parser.parse_args(argv)
    try:
        lock = refresh(args.lock, args.region, args.model_version)
    except Exception as error:  # the SDK raises plain exceptions for missing credentials/metadata
        print(f"Could not resolve JumpStart metadata: {type(error).__name__}: {error}", file=sys.stderr)
        print("The lock file was not changed. Give this shell AWS credentials and a network connection.",
              file=sys.stderr)
        return 1
    print(f"{args.lock}: {lock['model_id']} {lock['model_version']}, {len(lock['regions'])} regions, "
          f"resolved at {lock['resolved_at']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
