"""Verification gates over every variant of the synthesized stack: cdk-nag, cfn-lint, checkov."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from emulator.synthesis import synth
from tests.conftest import ROOT

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
CFN_LINT = ROOT / ".venv" / "bin" / "cfn-lint"


@dataclass
class Gates:
    """The synthesized variants and the linters running over them (on other cores meanwhile)."""

    outdirs: dict[str, Path]  # {variant: cloud assembly dir}
    cfn_lint: dict[str, Future]  # {variant: its cfn-lint run}
    checkov: Future  # one checkov run over every variant's templates


def templates(outdir: Path) -> list[Path]:
    return sorted(outdir.glob("*.template.json"))


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, **kwargs)


def cfn_lint(files: list[Path]) -> subprocess.CompletedProcess:
    return run([str(CFN_LINT), "--format", "parseable", *map(str, files)])


def checkov(files: list[Path]) -> subprocess.CompletedProcess:
    """One run over all the files: checkov's start-up (about 6 s) is paid once, not per template,
    and its JSON names the file of every check, so each finding is still told apart by variant."""
    assert CHECKOV.exists(), f"checkov not installed at {CHECKOV}: run `make test`, which installs it"
    return run(
        [
            str(CHECKOV),
            "--skip-download",
            "--quiet",
            "--framework",
            "cloudformation",
            "--output",
            "json",
            *(arg for f in files for arg in ("-f", str(f))),
        ],
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )


@pytest.fixture(scope="module")
def gates():
    """Each variant synthesized as `cdk synth` does, cdk-nag registered (once per test run, shared
    with the other tests: emulator/synthesis.py). cfn-lint starts on a variant as soon as it is
    synthesized, while the next one synthesizes (at most one run per core), and checkov, the longest
    run, once over all of them as soon as the last is there, beside any cfn-lint still queued; the
    tests below wait for the run they read."""
    linters = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="cfn-lint")
    checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkov")
    try:
        outdirs, lint = {}, {}
        for name, (context, environ) in VARIANTS.items():
            outdirs[name] = synth(context, environ).outdir
            lint[name] = linters.submit(cfn_lint, templates(outdirs[name]))
        yield Gates(outdirs, lint, checker.submit(checkov, [t for o in outdirs.values() for t in templates(o)]))
    finally:
        for pool in (linters, checker):
            pool.shutdown(cancel_futures=True)


@pytest.fixture(scope="module")
def synthesized(gates):
    """{variant: cloud assembly dir}"""
    return gates.outdirs


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
def test_cfn_lint_reports_nothing(gates, variant):
    assert templates(gates.outdirs[variant])
    result = gates.cfn_lint[variant].result()
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr


def checkov_failures(gates: Gates) -> list[tuple[str, str, str]]:
    """(variant, check id, resource) of every failed check, from the one run over all variants."""
    result = gates.checkov.result()
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports), [r["summary"] for r in reports]
    variant_of = {t.resolve(): name for name, outdir in gates.outdirs.items() for t in templates(outdir)}

    def variant(check: dict) -> str:
        return variant_of[Path(check["file_abs_path"]).resolve()]

    results = [r.get("results", {}) for r in reports]
    failed = [check for r in results for check in r.get("failed_checks", [])]
    passed = [check for r in results for check in r.get("passed_checks", [])]
    # Every variant's template was checked under its own path: none is missing from the findings
    # below, and none's findings are counted as another's.
    assert {variant(check) for check in failed + passed} == set(gates.outdirs)
    return [(variant(check), check["check_id"], check["resource"]) for check in failed]


def test_checkov_findings_are_all_fixed_or_reviewed(gates):
    exceptions = yaml.safe_load((ROOT / "tests" / "checkov_exceptions.yaml").read_text())
    assert all(e.get("reason", "").strip() for e in exceptions)
    used = set()
    unexplained = []
    for variant, check_id, resource in checkov_failures(gates):
        match = next(
            (
                i
                for i, e in enumerate(exceptions)
                if e["check"] == check_id and fnmatch.fnmatch(resource, e["resource"])
            ),
            None,
        )
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
