"""The synthesized app as the harness reads it: the template and the Lambda assets `cdk synth` staged."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from emulator.account import BUCKET_KEY_ARN, BUCKET_NAME

LAMBDA_DIR = Path(__file__).resolve().parents[1] / "lambda"
# Settings that make runs quick: a 2 s quiet window, endpoint checks every second (which the
# history budget allows only with a short endpointMaxWaitMinutes).
FAST_CONTEXT = {"quietWindowSeconds": 2, "endpointPollSeconds": 1, "endpointMaxWaitMinutes": 5}
# The stack over the harness's bucket taken over as an existing one whose default encryption is
# SSE-KMS with a customer key (`-c bucketName=... -c bucketKmsKeyArn=...`); run it with
# `PipelineHarness(bucket_key_arn=BUCKET_KEY_ARN)`, which encrypts the bucket so.
KMS_BUCKET_CONTEXT = {"bucketName": BUCKET_NAME, "bucketKmsKeyArn": BUCKET_KEY_ARN}


@dataclass
class Synthesized:
    template: dict[str, Any]
    assembly_dir: Path
    stack_name: str

    def resources(self, type_: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == type_}

    def project_code(self, function_logical_id: str) -> Optional[str]:
        """Which capability's lambda/<capability> folder a function's asset is ("intake", "api", ...),
        or None for code CDK adds itself (bucket notifications and the like)."""
        code = self.template["Resources"][function_logical_id]["Properties"].get("Code", {})
        if "S3Key" not in code:
            return None
        staged = {p.name for p in self.asset_dir(function_logical_id).glob("*.py")}
        for source in sorted(p for p in LAMBDA_DIR.iterdir() if p.is_dir()):
            if staged and staged == {p.name for p in source.glob("*.py")}:
                return source.name
        return None

    def asset_dir(self, function_logical_id: str) -> Path:
        """The directory `cdk synth` staged for a function's code asset."""
        code = self.template["Resources"][function_logical_id]["Properties"]["Code"]
        object_key = code["S3Key"]
        manifest = json.loads((self.assembly_dir / f"{self.stack_name}.assets.json").read_text())
        for asset in manifest["files"].values():
            if any(dest["objectKey"] == object_key for dest in asset["destinations"].values()):
                return self.assembly_dir / asset["source"]["path"]
        raise KeyError(f"no asset for {function_logical_id}")


def synthesize(context: Optional[Mapping[str, Any]] = None, outdir: Optional[Path] = None) -> Synthesized:
    """The real app (cdk.json context + `context`) synthesized, cdk-nag included.

    Without `outdir`, each distinct context is synthesized once per process and its cloud assembly
    shared (emulator/synthesis.py): the tests' way. With `outdir`, a fresh synthesis into that folder.
    """
    from emulator.synthesis import cdk_json_context, synth
    from stacks.application import build_app

    if outdir is None:
        cached = synth(context)
        outdir, stack_name = cached.outdir, cached.stack.stack_name
    else:
        app, stack = build_app({**cdk_json_context(), **(context or {})}, environ={}, outdir=str(outdir))
        app.synth()
        stack_name = stack.stack_name
    template = json.loads((outdir / f"{stack_name}.template.json").read_text())
    return Synthesized(template=template, assembly_dir=outdir, stack_name=stack_name)
