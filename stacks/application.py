"""Builds the CDK app: load config, compose the stack, register cdk-nag. No AWS calls."""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.config import AppConfig
from stacks.stack import DreamBoothStack


def build_app(
    context: Optional[Mapping[str, Any]] = None,
    environ: Mapping[str, str] = os.environ,
    outdir: Optional[str] = None,
) -> tuple[cdk.App, DreamBoothStack]:
    """Return the app and its stack. `context` adds to cdk.json's context (tests use it)."""
    app = cdk.App(context=dict(context or {}), outdir=outdir)
    config = AppConfig.load(app.node.try_get_context, environ)
    stack = DreamBoothStack(
        app,
        config.stack_name,
        config=config,
        env=cdk.Environment(account=config.env.account, region=config.env.region),
        description="DreamBooth Pipeline: fine-tune Stable Diffusion on your photos, serve it over HTTPS.",
    )
    # Unacknowledged AwsSolutions findings fail synth; acknowledgments sit next to their resources.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack
