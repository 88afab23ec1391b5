"""Verification gates over every variant of the synthesized stack: cdk-nag, cfn-lint, checkov."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.synthesis import synth

# Each variant synthesizes differently: created or taken-over bucket, access logs on, IAM auth,
# and as a real deploy synthesizes it, with a concrete account and region (ARNs become literal).
DEPLOY_ENV = {"CDK_DEFAULT_ACCOUNT": "123456789012", "CDK_DEFAULT_REGION": "us-east-1"}
VARIANTS = {
    "created": ({}, {}),
    "imported": ({"bucketName": "existing-photos-bucket"}, {}),
    "access-logs": ({"accessLogBucketName": "my-log-bucket", "notificationEmail": "me@example.com"}, {}),
    "iam-auth": ({"apiAuth": "iam"}, {}),
    "deploy-env-created": ({}, DEPLOY_ENV),
    "deploy-env-imported": ({"bucketName": "existing-photos-bucket"}, DEPLOY_ENV),
}
CHECKOV = Path(os.environ.get("CHECKOV", ROOT / ".venv-checkov" / "bin" / "checkov"))


@pytest.fixture(scope="module")
def synthesized():
    """{variant: cloud assembly dir}, synthesized as `cdk synth` does, cdk-nag registered (each
    variant once per test run, shared with the other tests: tests/synthesis.py)."""
    return {name: synth(context, environ).outdir for name, (context, environ) in VARIANTS.items()}


def templates(outdir: Path) -> list[Path]:
    return sorted(outdir.glob("*.template.json"))


@pytest.mark.parametrize("variant", VARIANTS)
def test_cdk_nag_has_no_unacknowledged_findings(synthesized, variant):
    report = json.loads((synthesized[variant] / "validation-report.json").read_text())
    (nag,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    assert nag["violations"] == [] and nag["conclusion"] == "success"
    for suppressed in nag["suppressedViolations"]:
        # Each acknowledgment names one granular finding and gives a reason of substance.
        assert suppressed["acknowledgedId"].startswith("AwsSolutions::AwsSolutions-")
        assert len(suppressed["reason"]) >= 60 and "false positive" not in suppressed["reason"].lower()


@pytest.mark.parametrize("variant", VARIANTS)
def test_cfn_lint_reports_nothing(synthesized, variant):
    files = [str(t) for t in templates(synthesized[variant])]
    assert files
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "cfn-lint"), "--format", "parseable", *files],
        capture_output=True, text=True, check=False,
    )
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr


def checkov_failures(template: Path) -> list[tuple[str, str]]:
    assert CHECKOV.exists(), f"checkov not installed at {CHECKOV}: run `make test`, which installs it"
    result = subprocess.run(
        [str(CHECKOV), "--skip-download", "--quiet", "--framework", "cloudformation",
         "--output", "json", "-f", str(template)],
        capture_output=True, text=True, check=False, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    return [
        (check["check_id"], check["resource"])
        for r in reports
        for check in r.get("results", {}).get("failed_checks", [])
    ]


def test_checkov_findings_are_all_fixed_or_reviewed(synthesized):
    exceptions = yaml.safe_load((ROOT / "tests" / "checkov_exceptions.yaml").read_text())
    assert all(e.get("reason", "").strip() for e in exceptions)
    used = set()
    unexplained = []
    for variant, outdir in synthesized.items():
        for template in templates(outdir):
            for check_id, resource in checkov_failures(template):
                match = next((i for i, e in enumerate(exceptions)
                              if e["check"] == check_id and fnmatch.fnmatch(resource, e["resource"])), None)
                if match is None:
                    unexplained.append(f"{variant}: {check_id} on {resource}")
                else:
                    used.add(match)
    assert unexplained == [], "checkov findings neither fixed nor in tests/checkov_exceptions.yaml"
    stale = [f"{e['check']} {e['resource']}" for i, e in enumerate(exceptions) if i not in used]
    assert stale == [], "entries in tests/checkov_exceptions.yaml that match no finding any more"


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_log_group_has_retention_and_every_function_logs_to_one(synthesized, variant):
    """No log group kept forever, and no Lambda left to create an unmanaged /aws/lambda/<name> group."""
    for template in templates(synthesized[variant]):
        resources = json.loads(template.read_text())["Resources"]
        groups = {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::Logs::LogGroup"}
        assert groups
        assert {k: p.get("RetentionInDays") for k, p in groups.items()} == {k: 30 for k in groups}
        functions = {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"}
        assert functions
        for name, props in functions.items():
            target = props.get("LoggingConfig", {}).get("LogGroup")
            assert target in [{"Ref": k} for k in groups], f"{name} logs to {target!r}, not a managed group"
