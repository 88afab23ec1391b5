"""The AWS SDK layer every function of the stack runs with: requirements-lambda.txt, built without Docker.

The python3.13 runtime bundles its own boto3, months older than the one the tests run (1.44.x);
a call newer than it (e.g. `copy_object(IfNoneMatch=...)`, botocore >= 1.41) would fail parameter
validation in AWS only. The layer holds the pinned SDK under `python/` (Lambda puts /opt/python on
sys.path before the runtime's own packages), so the handlers import it instead.

Built by CDK's local bundling (no Docker): `pip install --target` of the pinned pure-Python wheels
for Python 3.13 / manylinux x86_64, no dependency resolution (the file pins the whole set), no
bytecode, no console scripts, so the same file gives the same files. The build is kept under
build/lambda-sdk/<hash of the file and recipe>/ (gitignored): every synth after the first copies it,
and the asset hash is that same hash, so the template does not change unless the file does.
Offline, pip takes the wheels from its configured index or cache; a fresh clone needs them once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.shared.assets import ROOT, locally_built

REQUIREMENTS = ROOT / "requirements-lambda.txt"
BUILD_DIR = ROOT / "build" / "lambda-sdk"
LAYER_PYTHON_DIR = "python"
"""Where Lambda looks in a layer for Python packages (/opt/python)."""
PIP_TARGET_ARGS = (
    "--no-deps",
    "--no-compile",
    "--only-binary=:all:",
    "--platform",
    "manylinux2014_x86_64",
    "--implementation",
    "cp",
    "--python-version",
    "3.13",
)


def pinned() -> dict[str, str]:
    """The layer's packages and versions, as requirements-lambda.txt pins them."""
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def layer_hash() -> str:
    """What the layer's content depends on: the pins and how they are installed."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update(" ".join((LAYER_PYTHON_DIR, *PIP_TARGET_ARGS)).encode())
    return digest.hexdigest()[:32]


def build_layer() -> Path:
    """build/lambda-sdk/<hash>/ holding python/<packages> (built now unless already there)."""
    built = BUILD_DIR / layer_hash()
    if (built / LAYER_PYTHON_DIR).is_dir():
        return built
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="building-", dir=BUILD_DIR))
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
                str(staging / LAYER_PYTHON_DIR),
                *PIP_TARGET_ARGS,
                "-r",
                str(REQUIREMENTS),
            ],
            check=True,
            env={**os.environ, "PIP_NO_INPUT": "1"},
        )
        # Console scripts carry this machine's interpreter path in their first line: not layer content.
        shutil.rmtree(staging / LAYER_PYTHON_DIR / "bin", ignore_errors=True)
        if built.exists() and not (built / LAYER_PYTHON_DIR).is_dir():
            shutil.rmtree(built)  # an interrupted build's leftovers
        try:
            staging.rename(built)  # another process may have built it meanwhile: theirs is the same
        except OSError:
            if not (built / LAYER_PYTHON_DIR).is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return built


def copy_layer(output_dir: Path) -> None:
    """The layer's content: the cached build's python/ folder."""
    shutil.copytree(build_layer() / LAYER_PYTHON_DIR, output_dir / LAYER_PYTHON_DIR, dirs_exist_ok=True)


SDK_LAYER_ID = "AwsSdkLayer"


def sdk_layer(scope: Construct) -> lambda_.ILayerVersion:
    """The stack's one layer with requirements-lambda.txt's SDK (python3.13, x86_64), created on first use."""
    stack = Stack.of(scope)
    existing = stack.node.try_find_child(SDK_LAYER_ID)
    if existing is not None:
        return existing
    pins = pinned()
    return lambda_.LayerVersion(
        stack,
        SDK_LAYER_ID,
        # The source folder is never read: the asset's hash is the pins' (layer_hash), its content the build.
        code=locally_built(REQUIREMENTS.parent, copy_layer, asset_hash=layer_hash()),
        compatible_runtimes=[lambda_.Runtime.PYTHON_3_13],
        compatible_architectures=[lambda_.Architecture.X86_64],
        description=f"AWS SDK for the pipeline's functions: boto3 {pins['boto3']}, botocore {pins['botocore']} "
        f"(requirements-lambda.txt)",
    )
