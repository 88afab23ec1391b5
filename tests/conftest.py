"""Shared fixtures. Tests never reach AWS: credentials are fake and every AWS call goes to moto."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Set before any boto3 client exists: a stray real call fails on these instead of using a profile.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
    JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
)
os.environ.pop("AWS_PROFILE", None)


def synth_stack(context: Optional[Mapping[str, Any]] = None, environ: Optional[Mapping[str, str]] = None):
    """Build the real app with extra context; returns the stack (cdk.json's context applies too)."""
    import json

    from stacks.application import build_app

    cdk_json = json.loads((ROOT / "cdk.json").read_text())["context"]
    _, stack = build_app({**cdk_json, **(context or {})}, environ=environ or {})
    return stack


@pytest.fixture(scope="session")
def created_stack():
    return synth_stack()


@pytest.fixture(scope="session")
def imported_stack():
    return synth_stack({"bucketName": "existing-photos-bucket"})
