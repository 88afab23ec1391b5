"""The project's own asset builds: CDK local bundling (in this process, never Docker), one idiom for all.

`locally_built(source, build)` is an asset whose content is what `build(output_dir)` writes. Two builds use it:
- each capability's function code, `lambda_code(capability)`: lambda/<capability>/ (its handlers and the plain
  logic beside them) with the shared package, dreambooth_shared/, copied in beside them, so a handler imports
  `dreambooth_shared.contract` in its asset as the constructs and the CLI do in the repository. The asset hash
  is the hash of that output (AssetHashType.OUTPUT): a change to the shared package changes every asset.
  Bytecode (`__pycache__`, `*.pyc`) is left out; the copy is of files only, so the same tree gives the same
  asset;
- the AWS SDK layer (stacks/shared/sdk_layer.py), whose build is cached and whose hash is its own key.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Optional

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_DIR = ROOT / "lambda"
"""lambda/<capability>/: every function's code, one folder (and one asset) per capability."""
SHARED_PACKAGE = ROOT / "dreambooth_shared"
"""The package the functions share with the constructs and the CLI; copied into every function asset."""
CAPABILITIES = ("api", "intake", "training", "serving", "monitoring", "cleanup")
LEFT_OUT = shutil.ignore_patterns("__pycache__", "*.pyc")


@jsii.implements(ILocalBundling)
class _LocalBuild:
    """CDK's bundling hook: `build` writes the asset's content into the output directory."""

    def __init__(self, build: Callable[[Path], None]) -> None:
        self._build = build

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        self._build(Path(output_dir))
        return True


def locally_built(source: Path, build: Callable[[Path], None], *, asset_hash: Optional[str] = None) -> lambda_.Code:
    """An asset built by `build(output_dir)` in this process. Its hash: `asset_hash` when the build has its
    own key (CUSTOM), else the hash of the output (OUTPUT). `source` is only checked to be a folder."""
    return lambda_.Code.from_asset(
        str(source),
        asset_hash_type=AssetHashType.CUSTOM if asset_hash else AssetHashType.OUTPUT,
        asset_hash=asset_hash,
        bundling=BundlingOptions(image=DockerImage.from_registry("unused-local-bundling"), local=_LocalBuild(build)),
    )


def lambda_dir(capability: str) -> Path:
    """lambda/<capability>: the code that capability's functions run."""
    return LAMBDA_DIR / capability


def copy_function_code(capability: str, output_dir: Path) -> None:
    """What a capability's asset holds: lambda/<capability>/ and dreambooth_shared/ beside its modules."""
    shutil.copytree(lambda_dir(capability), output_dir, ignore=LEFT_OUT, dirs_exist_ok=True)
    shutil.copytree(SHARED_PACKAGE, output_dir / SHARED_PACKAGE.name, ignore=LEFT_OUT, dirs_exist_ok=True)


def lambda_code(capability: str) -> lambda_.Code:
    """The asset of lambda/<capability> with the shared package (see the module's docstring)."""
    if capability not in CAPABILITIES:
        raise ValueError(f"no lambda/{capability}: the capabilities are {', '.join(CAPABILITIES)}")
    return locally_built(lambda_dir(capability), lambda output: copy_function_code(capability, output))
