"""The main job (`make deploy`): deploy with AWS credentials, or synthesize offline without them.

USAGE (below) is what `make deploy ARGS=--help` prints.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from botocore.exceptions import BotoCoreError, ClientError

from scripts import choose_bucket
from scripts.aws_session import JSII_SILENCE, NODE_VERSION_SILENCED, AwsAccessProblem, access_problem, user_session
from scripts.cli import preflight
from scripts.context import NO_REHEARSAL, ROOT, SETUP_ACCOUNT, SKIP_PREFLIGHT, context_from, has_credentials
from stacks.config import JUMPSTART_LOCK_MAX_AGE_DAYS, AppConfig, ConfigError

# --no-notices: the CLI would otherwise try to fetch and print AWS's notices (no network here, and
# noise on a machine that has one); the jsii banner is silenced through the environment (main()).
CDK = ["npx", "--no-install", "cdk"]
CDK_QUIET = ["--no-notices"]
HELP_FLAGS = ("-h", "--help")
USAGE = f"""usage: make deploy [ARGS="[{NO_REHEARSAL}] [-c KEY=VALUE ...] [other cdk deploy options]"]
       (or: .venv/bin/python -m scripts.deploy [ARGS...])

With AWS credentials (aws configure, AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, plus
AWS_REGION): check the configuration; resolve the JumpStart lock (stacks/training/jumpstart.lock.json)
for the region from JumpStart's metadata when it was never resolved there or more than
{JUMPSTART_LOCK_MAX_AGE_DAYS} days ago (the SageMaker SDK, sagemaker-core from requirements-lock.txt, is
installed into .venv first if missing), refuse a deprecated or unserved model version, check that
its scripts, model and images exist (S3, ECR) and write the lock; run the account checks the deploy depends on
(scripts/cli/preflight.py: API Gateway's account-level CloudWatch Logs role, bucket encryption,
the SageMaker quotas; a failed blocking check stops with its fix, quotas are only reported),
choose the data bucket (create one, or reuse one when the
account is at its S3 bucket quota) and record that choice in cdk.context.json, bootstrap CDK in
the account and region if needed, then `cdk deploy` (CDK asks before it widens IAM permissions).

Without credentials: `cdk synth` into cdk.out/ (cdk-nag checked), making no AWS call, then the
offline rehearsal of the whole flow on the emulator (scripts/rehearse.py: SageMaker simulated,
placeholder images), and say what a deploy needs.

options:
  -h, --help       show this help and exit (nothing is synthesized or deployed)
  {NO_REHEARSAL}   offline only: skip the rehearsal (not passed on to cdk)
  {SETUP_ACCOUNT}  when API Gateway has no CloudWatch Logs role, create and set one without asking
                   (a role that is set is never replaced; not passed on to cdk)
  {SKIP_PREFLIGHT} deploy without running the account checks first (the JumpStart step still runs;
                   not passed on to cdk)
  -c KEY=VALUE     a configuration value (docs/configuration.md), passed on to cdk
  anything else    passed on to `cdk deploy` / `cdk synth` (see `npx cdk deploy --help`)

Exit codes: 0 done; 1 synth, rehearsal or deploy failed; 2 bad configuration, or AWS credentials,
profile, region or network not usable (one line says which and how to fix it); 3 no data bucket
can be used (the account is at its bucket quota); 4 an account check failed (nothing deployed);
5 the JumpStart model is deprecated or not served in the region, or one of its artifacts is missing
(one line says what to do; nothing deployed, the lock file unchanged).

Examples:
  make deploy
  make deploy ARGS=--no-rehearsal
  make deploy ARGS=--setup-account
  make deploy ARGS="-c notificationEmail=me@example.com -c endpointMaxInstances=2"
  AWS_PROFILE=work AWS_REGION=eu-west-1 make deploy"""


class BucketNotUsable(RuntimeError):
    """The configured bucketName does not exist or cannot be reached with these credentials."""


Runner = Callable[[Sequence[str], dict[str, str]], int]


def _run(command: Sequence[str], env: dict[str, str]) -> int:
    return subprocess.run(list(command), cwd=ROOT, env=env, check=False).returncode


REHEARSE = [sys.executable, "-m", "scripts.rehearse"]


def synth_offline(
    args: Sequence[str], run: Runner, environ: dict[str, str], config: AppConfig, rehearse: bool = True
) -> int:
    print("No AWS credentials found: synthesizing offline (no AWS call is made).")
    code = run([*CDK, "synth", "--quiet", *CDK_QUIET, *args], environ)
    if code == 0:
        print("\nTemplates written to cdk.out/ and checked by cdk-nag.")
        if rehearse:
            print(f"\nNext, the offline rehearsal (skip it with {NO_REHEARSAL}).", flush=True)
            code = run(REHEARSE, environ)
            if code:
                print(
                    f"\nThe rehearsal failed (exit status {code}); the templates in cdk.out/ are as synthesized.",
                    file=sys.stderr,
                )
        print(
            "\nTo deploy, give this shell AWS credentials (aws configure, AWS_PROFILE or the\n"
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables) and a region (AWS_REGION), then\n"
            "run the same command again. The account needs SageMaker quota (Service Quotas >\n"
            f"Amazon SageMaker) for {config.training.instance_type} training job usage and\n"
            f"{config.serving.instance_type} endpoint usage. A deploy first runs the account checks of\n"
            "`dreambooth preflight`; when API Gateway has no CloudWatch Logs role in the region it offers to\n"
            f"create one ({SETUP_ACCOUNT} says yes in advance)."
        )
    return code


def choose_data_bucket(config: AppConfig, session: Any, account: str, region: str, root: Path = ROOT) -> str:
    """Make sure cdk.context.json holds a bucket decision; return a line saying what it is."""
    if config.storage.bucket_name:
        try:
            session.client("s3").head_bucket(Bucket=config.storage.bucket_name)
        except ClientError as error:
            raise BucketNotUsable(
                f"The configured bucket {config.storage.bucket_name!r} cannot be used: {error}. "
                "Check the name (bucketName), the region and your permissions."
            ) from None
        return f"Using the configured bucket {config.storage.bucket_name} (it is not reconfigured)."
    context_file = root / "cdk.context.json"
    decision = choose_bucket.recorded(context_file, config.stack_name, account, region)
    if decision is None:
        decision = choose_bucket.decide(
            stack_name=config.stack_name,
            margin=config.storage.bucket_quota_margin,
            s3=session.client("s3"),
            service_quotas=session.client("service-quotas"),
            tagging=session.client("resourcegroupstaggingapi"),
            cloudformation=session.client("cloudformation"),
        )
        key = choose_bucket.record(context_file, config.stack_name, account, region, decision)
        return f"Bucket: {decision.action} ({decision.reason}); recorded in cdk.context.json as {key}."
    return f"Bucket: {decision.action} ({decision.reason}), as recorded earlier in cdk.context.json."


PREFLIGHT_FAILED = 4
JUMPSTART_UNAVAILABLE = 5
PIP_INSTALL_SDK = [sys.executable, "-m", "pip", "install", "-q", "-r"]


def resolve_jumpstart(
    session: Any,
    region: str,
    run: Runner,
    environ: dict[str, str],
    root: Path = ROOT,
    *,
    installed: Optional[Callable[[], bool]] = None,
    config: Optional[AppConfig] = None,
) -> Optional[int]:
    """The JumpStart step of a deploy (scripts/refresh_jumpstart_lock.py: ensure_region) for `region` and the
    instance types `config` trains and serves on: resolve the lock when stale, check the version is not
    deprecated, verify its artifacts, write it. None: go on; else the exit code (one line said why)."""
    from scripts import refresh_jumpstart_lock as jumpstart

    installed = installed or jumpstart.sdk_installed
    types = jumpstart.InstanceTypes.of(config) if config is not None else jumpstart.InstanceTypes.defaults()
    lock_path = root / jumpstart.LOCK_FILE.relative_to(jumpstart.ROOT)
    stale = jumpstart.staleness(lock_path, region, datetime.now(timezone.utc), types)
    if stale and not installed():
        requirements = root / jumpstart.REQUIREMENTS.relative_to(jumpstart.ROOT)
        print(
            f"Installing the SageMaker SDK ({requirements.name}: sagemaker-core) into this Python to resolve the "
            f"JumpStart lock for {region} ({stale}) ...",
            flush=True,
        )
        code = run([*PIP_INSTALL_SDK, str(requirements)], environ)
        if code or not installed():
            print(
                f"Could not install the SageMaker SDK (pip exit status {code}): nothing was deployed. Install it "
                f"yourself (.venv/bin/python -m pip install -r {requirements.name}) and run again.",
                file=sys.stderr,
            )
            return 1
    try:
        resolution = jumpstart.ensure_region(lock_path, session, region, instance_types=types)
    except jumpstart.JumpStartUnavailable as error:
        print(str(error), file=sys.stderr)
        return JUMPSTART_UNAVAILABLE
    print(resolution.summary() + ".")
    for check in resolution.unverified:
        print(f"  not verified: {check.field} {check.uri} ({check.detail}); the deploy goes on.")
    if resolution.written:
        print(f"  Wrote {lock_path.relative_to(root)} (commit it to keep this resolution).")
    return None


def ask(question: str) -> bool:
    """Yes/no on a terminal; False when nobody can answer (CI, pipes)."""
    if not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def run_preflight(session: Any, config: AppConfig, setup_account: bool, confirm: Callable[[str], bool] = ask) -> bool:
    """The checks a deploy depends on; set up the API Gateway logging role when allowed. True: go on."""
    checks = preflight.account_checks(session, config)
    missing_role = next(
        (
            c
            for c in checks
            if c.name == preflight.APIGATEWAY_CHECK and not c.ok and "has no CloudWatch Logs role" in c.detail
        ),
        None,
    )
    if missing_role and (
        setup_account
        or confirm(
            f"{missing_role.detail}.\nCreate the IAM role {preflight.APIGATEWAY_LOGS_ROLE_NAME} and set it as API "
            f"Gateway's CloudWatch Logs role for {session.region_name} (an account setting, kept after cdk destroy)?"
        )
    ):
        print(preflight.setup_apigateway_logging_role(session))
        checks = preflight.account_checks(session, config)
    print(preflight.render(checks))
    blocking = [c for c in checks if not c.ok and c.blocks_deploy]
    if blocking:
        print(
            f"\nNothing was deployed: fix the failed checks above (or deploy anyway with {SKIP_PREFLIGHT}).",
            file=sys.stderr,
        )
        return False
    if any(not c.ok for c in checks):
        print("\nThe stack can be deployed, but trainings or generations will fail until the checks above pass.")
    return True


def deploy(
    args: Sequence[str],
    session: Any,
    run: Runner,
    environ: dict[str, str],
    config: AppConfig,
    root: Path = ROOT,
    *,
    setup_account: bool = False,
    skip_preflight: bool = False,
    confirm: Callable[[str], bool] = ask,
) -> int:
    account = session.client("sts").get_caller_identity()["Account"]
    region = session.region_name
    if not region:
        print("No AWS region set: export AWS_REGION (for example us-east-1) and run again.", file=sys.stderr)
        return 2
    code = resolve_jumpstart(session, region, run, environ, root, config=config)
    if code is not None:
        return code
    if not skip_preflight and not run_preflight(session, config, setup_account, confirm):
        return PREFLIGHT_FAILED
    try:
        print(choose_data_bucket(config, session, account, region, root))
    except choose_bucket.NoBucketAvailable as error:
        print(str(error), file=sys.stderr)
        return 3
    env = {**environ, "CDK_DEPLOY_ACCOUNT": account, "CDK_DEPLOY_REGION": region}
    try:
        session.client("cloudformation").describe_stacks(StackName="CDKToolkit")
    except ClientError:
        print(f"Bootstrapping aws://{account}/{region} for CDK (once per account and region).")
        code = run([*CDK, "bootstrap", *CDK_QUIET, f"aws://{account}/{region}"], env)
        if code:
            return code
    return run([*CDK, "deploy", *CDK_QUIET, *args], env)


def main(
    args: Optional[Sequence[str]] = None,
    session: Any = None,
    run: Runner = _run,
    environ: Optional[dict[str, str]] = None,
    root: Path = ROOT,
    confirm: Callable[[str], bool] = ask,
) -> int:
    args = list(sys.argv[1:] if args is None else args)
    if any(a in HELP_FLAGS for a in args):
        print(USAGE)
        return 0
    rehearse = NO_REHEARSAL not in args
    setup_account, skip_preflight = SETUP_ACCOUNT in args, SKIP_PREFLIGHT in args
    args = [a for a in args if a not in (NO_REHEARSAL, SETUP_ACCOUNT, SKIP_PREFLIGHT)]
    environ = dict(os.environ if environ is None else environ)
    environ.setdefault(JSII_SILENCE, NODE_VERSION_SILENCED)
    try:
        session = session or user_session()
        config = AppConfig.load(context_from(args, root).get, environ)
        if not has_credentials(session):
            return synth_offline(args, run, environ, config, rehearse)
        return deploy(
            args,
            session,
            run,
            environ,
            config,
            root,
            setup_account=setup_account,
            skip_preflight=skip_preflight,
            confirm=confirm,
        )
    except (ConfigError, BucketNotUsable) as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return 2
    except (AwsAccessProblem, BotoCoreError, ClientError) as error:
        problem = access_problem(error)
        if problem is None:
            raise
        print(f"AWS access: {problem}. Nothing was deployed.", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
