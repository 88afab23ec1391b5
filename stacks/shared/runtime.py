"""Lambda code assets: one per capability, its `runtime/` folder as the function sees it.

A runtime folder holds its own modules plus symlinks to what it shares with other units
(stacks/contract.py in every folder; the intake's dataset_rules.py in the API's; serving's
autoscaling.py in cleanup's). Following the symlinks puts those very files into the asset: each
asset holds exactly what its handlers import, with no copy in the repository and no build step.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import SymlinkFollowMode
from aws_cdk import aws_lambda as lambda_

STACKS_DIR = Path(__file__).resolve().parents[1]


def runtime_dir(capability: str) -> Path:
    """stacks/<capability>/runtime: the code that capability's functions run."""
    return STACKS_DIR / capability / "runtime"


def runtime_code(capability: str) -> lambda_.Code:
    """The asset of stacks/<capability>/runtime (symlinks followed, bytecode left out)."""
    return lambda_.Code.from_asset(str(runtime_dir(capability)), exclude=["__pycache__", "*.pyc"],
                                   follow_symlinks=SymlinkFollowMode.ALWAYS)
