"""Checks to run before a deploy: will this account and region be able to train and serve?

Each check returns a `Check` with what it found and, when it fails, the fix. The checks change
nothing in the account; `setup_apigateway_logging_role` is the one change this module can make,
and only when the user asks for it (`make deploy ARGS=--setup-account`, or yes at the prompt).

`blocks_deploy` tells the checks a deploy itself depends on (it stops `make deploy`) from those a
training or generation depends on (quotas: the stack deploys without them, jobs fail later;
`make deploy` reports them and goes on).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from botocore.exceptions import BotoCoreError, ClientError

from dreambooth_shared.contract import error_code, training_quota_name
from scripts import choose_bucket
from scripts.aws_session import CREDENTIALS_FIX, REGION_FIX, access_problem
from scripts.context import SETUP_ACCOUNT
from stacks.config import AppConfig
from stacks.training.jumpstart_lock import JumpStartLock

SAGEMAKER_SERVICE_CODE = "sagemaker"
# API Gateway's account-level CloudWatch Logs role (one per account and region), which access
# logging on the API stage needs. Created by `setup_apigateway_logging_role` only when none is set;
# kept when the stack is destroyed (other APIs of the account may log through it by then).
APIGATEWAY_LOGS_ROLE_NAME = "APIGatewayCloudWatchLogs-dreambooth"
APIGATEWAY_LOGS_POLICY = "policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
APIGATEWAY_CHECK = "api gateway logging role"
JUMPSTART_CHECK = "jumpstart model"

# Checks whose failure is the caller's AWS set-up (credentials, profile, region): exit code 2, as in
# every other command; any other failed check is exit code 1.
ACCESS_CHECKS = ("credentials", "region")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    blocks_deploy: bool = True
    """False: the stack deploys anyway; only trainings or generations would fail."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_credentials(session: Any) -> tuple[Check, Optional[str]]:
    """Who we are; the account id when it worked."""
    try:
        identity = session.client("sts").get_caller_identity()
    except (ClientError, BotoCoreError) as error:
        return Check(
            "credentials", False, access_problem(error) or f"no usable AWS credentials ({error})", CREDENTIALS_FIX
        ), None
    return Check("credentials", True, f"account {identity['Account']} as {identity['Arn']}"), identity["Account"]


def check_region(session: Any, lock: JumpStartLock) -> Check:
    region = session.region_name
    if not region:
        return Check("region", False, "no region set", REGION_FIX)
    if region not in lock.regions:
        return Check(
            "region",
            False,
            f"{region} is not in the JumpStart lock file (stacks/training/jumpstart.lock.json)",
            "pick one of: "
            + ", ".join(sorted(lock.regions))
            + "; or, with credentials, add it: python -m scripts.refresh_jumpstart_lock --region "
            + region,
        )
    return Check("region", True, f"{region} (covered by the JumpStart lock file)")


def check_jumpstart(
    session: Any, region: str, lock_path: Optional[Path] = None, config: Optional[AppConfig] = None
) -> Check:
    """What `make deploy` checks before it synthesizes (scripts/refresh_jumpstart_lock.py: ensure_region): the
    lock resolved for the region from JumpStart's metadata when stale, the version not deprecated, every
    artifact there. Nothing is written here: the deploy writes the lock."""
    from scripts import refresh_jumpstart_lock as jumpstart

    lock_path = lock_path or jumpstart.LOCK_FILE
    types = jumpstart.InstanceTypes.of(config) if config is not None else jumpstart.InstanceTypes.defaults()
    stale = jumpstart.staleness(lock_path, region, datetime.now(timezone.utc), types)
    resolve_fix = (
        f"`make deploy` resolves it (installing the SageMaker SDK first), or `make refresh-lock "
        f'ARGS="--region {region}"`'
    )
    if stale and not jumpstart.sdk_installed():
        lock = json.loads(lock_path.read_text())
        entry = lock["regions"].get(region)
        checks = jumpstart.verify_artifacts(session, region, entry) if entry else []
        found = sum(c.status == jumpstart.FOUND for c in checks)
        return Check(
            JUMPSTART_CHECK,
            False,
            f"not resolved ({stale}) and the SageMaker SDK is not installed to "
            f"resolve it; last-known values: {found} of {len(checks)} artifacts found",
            resolve_fix,
            blocks_deploy=False,
        )
    try:
        resolution = jumpstart.ensure_region(lock_path, session, region, write_lock=False, instance_types=types)
    except jumpstart.JumpStartUnavailable as error:
        return Check(JUMPSTART_CHECK, False, error.problem, error.todo)
    detail = resolution.summary()
    if resolution.unverified:
        detail += "; not verified: " + ", ".join(f"{c.field} ({c.detail})" for c in resolution.unverified)
    if stale:
        detail += "; not written (make deploy writes it)"
    return Check(JUMPSTART_CHECK, True, detail)


def check_bucket_quota(session: Any, config: AppConfig) -> Check:
    if config.storage.bucket_name:
        return Check("s3 bucket", True, f"using the configured bucket {config.storage.bucket_name}")
    try:
        decision = choose_bucket.decide(
            stack_name=config.stack_name,
            margin=config.storage.bucket_quota_margin,
            s3=session.client("s3"),
            service_quotas=session.client("service-quotas"),
            tagging=session.client("resourcegroupstaggingapi"),
            cloudformation=session.client("cloudformation"),
        )
    except choose_bucket.NoBucketAvailable as error:
        first_line, _, options = str(error).partition("Options:")
        return Check("s3 bucket", False, first_line.strip(), options.strip().replace("\n", " "))
    return Check("s3 bucket", True, f"{decision.action}: {decision.reason}")


AWS_MANAGED_S3_KEY = "alias/aws/s3"


def _bucket_in_use(session: Any, config: AppConfig) -> Optional[str]:
    """The existing bucket the stack will use: `bucketName`, or the one a quota decision reuses."""
    if config.storage.bucket_name:
        return config.storage.bucket_name
    try:
        decision = choose_bucket.decide(
            stack_name=config.stack_name,
            margin=config.storage.bucket_quota_margin,
            s3=session.client("s3"),
            service_quotas=session.client("service-quotas"),
            tagging=session.client("resourcegroupstaggingapi"),
            cloudformation=session.client("cloudformation"),
        )
    except (choose_bucket.NoBucketAvailable, ClientError, BotoCoreError):
        return None  # reported by check_bucket_quota
    return decision.bucket_name if decision.action == "reuse" else None


def check_bucket_encryption(s3: Any, bucket: Optional[str], configured_key: Optional[str]) -> Check:
    """A reused bucket encrypted with a customer KMS key needs that key named (bucketKmsKeyArn):
    without it no role of the stack could read the photos or write a model."""
    if bucket is None:
        return Check("bucket encryption", True, "the stack creates its bucket (SSE-S3)")
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError as error:
        if error_code(error) == "ServerSideEncryptionConfigurationNotFoundError":
            return Check("bucket encryption", True, f"{bucket}: no default encryption configured (SSE-S3 applies)")
        if error_code(error) == "NoSuchBucket":
            # Not this check's finding to block on: `make deploy`'s bucket step stops with its own message.
            return Check(
                "bucket encryption",
                False,
                f"bucket {bucket} does not exist",
                "create it, or drop bucketName to let the stack create one",
                blocks_deploy=False,
            )
        return Check(
            "bucket encryption",
            False,
            f"cannot read the encryption of {bucket} ({error})",
            "allow s3:GetEncryptionConfiguration on the bucket for the deploying user",
        )
    default = rules[0].get("ApplyServerSideEncryptionByDefault", {}) if rules else {}
    algorithm, key = default.get("SSEAlgorithm", "AES256"), default.get("KMSMasterKeyID")
    if (
        not algorithm.startswith("aws:kms")
        or key in (None, AWS_MANAGED_S3_KEY)
        or key.endswith(":" + AWS_MANAGED_S3_KEY)
    ):
        return Check("bucket encryption", True, f"{bucket}: {algorithm} with an AWS-managed key")
    if configured_key and (configured_key == key or configured_key.endswith(f":key/{key}")):
        return Check("bucket encryption", True, f"{bucket}: SSE-KMS with {key}, granted through bucketKmsKeyArn")
    found = f"{bucket} is encrypted by default with the customer KMS key {key}"
    if configured_key:
        return Check(
            "bucket encryption",
            False,
            f"{found}, but bucketKmsKeyArn names {configured_key}",
            f"set -c bucketKmsKeyArn=<the ARN of {key}>",
        )
    return Check(
        "bucket encryption",
        False,
        f"{found}; no role of the stack could read or write it",
        f"set -c bucketKmsKeyArn=<the ARN of {key}> (its key policy must let the account's IAM "
        "policies grant it, as the default key policy does), or use another bucket",
    )


def _apigateway_role_fix(region: str) -> str:
    trust = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "apigateway.amazonaws.com"}}
            ],
        }
    )
    return (
        f"run `make deploy ARGS={SETUP_ACCOUNT}` (creates the role {APIGATEWAY_LOGS_ROLE_NAME} with AWS's "
        "managed policy AmazonAPIGatewayPushToCloudWatchLogs and sets it for API Gateway in this region; "
        "nothing else changes), or yourself: "
        f"aws iam create-role --role-name {APIGATEWAY_LOGS_ROLE_NAME} --assume-role-policy-document '{trust}' && "
        f"aws iam attach-role-policy --role-name {APIGATEWAY_LOGS_ROLE_NAME} "
        f"--policy-arn arn:aws:iam::aws:{APIGATEWAY_LOGS_POLICY} && "
        f"aws apigateway update-account --region {region} --patch-operations "
        f"op=replace,path=/cloudwatchRoleArn,value=arn:aws:iam::<account>:role/{APIGATEWAY_LOGS_ROLE_NAME}"
    )


def check_apigateway_logging_role(session: Any) -> Check:
    """The account-level role API Gateway writes access logs with; without it the stage cannot be created."""
    region = session.region_name
    try:
        role_arn = session.client("apigateway").get_account().get("cloudwatchRoleArn")
    except (ClientError, BotoCoreError) as error:
        return Check(
            APIGATEWAY_CHECK,
            False,
            f"cannot read API Gateway's account settings ({error})",
            "allow apigateway:GET on arn:aws:apigateway:<region>::/account",
        )
    if not role_arn:
        return Check(
            APIGATEWAY_CHECK,
            False,
            f"API Gateway in {region} has no CloudWatch Logs role (account setting): the API stage's "
            "access logging would fail CreateStage and roll the stack back",
            _apigateway_role_fix(region),
        )
    try:
        session.client("iam").get_role(RoleName=role_arn.rsplit("/", 1)[-1])
    except ClientError as error:
        if error_code(error) == "NoSuchEntity":
            return Check(
                APIGATEWAY_CHECK,
                False,
                f"API Gateway's CloudWatch Logs role {role_arn} no longer exists (this tool never "
                "replaces a role someone set)",
                f"re-create {role_arn}, or point API Gateway at another role: aws apigateway "
                f"update-account --region {region} --patch-operations "
                "op=replace,path=/cloudwatchRoleArn,value=<role ARN>",
            )
        return Check(APIGATEWAY_CHECK, True, f"{role_arn} (set; could not read the role: {error})")
    return Check(APIGATEWAY_CHECK, True, f"{role_arn} (account setting, left as it is)")


def setup_apigateway_logging_role(session: Any, sleep: Callable[[float], None] = time.sleep, attempts: int = 10) -> str:
    """Create the logging role and set it for API Gateway, only if no role is set; say what was done.

    Never replaces a value that is there (read again right before writing). The role is a plain
    IAM role, not part of the stack: `cdk destroy` keeps it.
    """
    apigateway, iam = session.client("apigateway"), session.client("iam")
    current = apigateway.get_account().get("cloudwatchRoleArn")
    if current:
        return f"API Gateway already has a CloudWatch Logs role ({current}); left as it is."
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "apigateway.amazonaws.com"}}
        ],
    }
    try:
        role_arn = iam.create_role(
            RoleName=APIGATEWAY_LOGS_ROLE_NAME,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description="API Gateway writes access logs to CloudWatch Logs with this role (account setting, "
            "set by the DreamBooth pipeline's deploy; kept on cdk destroy)",
            Tags=[{"Key": "created-by", "Value": "dreambooth-pipeline"}],
        )["Role"]["Arn"]
    except ClientError as error:
        if error_code(error) != "EntityAlreadyExists":
            raise
        role_arn = iam.get_role(RoleName=APIGATEWAY_LOGS_ROLE_NAME)["Role"]["Arn"]
    partition = role_arn.split(":")[1]
    iam.attach_role_policy(
        RoleName=APIGATEWAY_LOGS_ROLE_NAME, PolicyArn=f"arn:{partition}:iam::aws:{APIGATEWAY_LOGS_POLICY}"
    )
    for attempt in range(attempts):
        if apigateway.get_account().get("cloudwatchRoleArn"):
            return "Someone set API Gateway's CloudWatch Logs role meanwhile; left as it is."
        try:
            apigateway.update_account(
                patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": role_arn}]
            )
            return (
                f"Created {role_arn} and set it as API Gateway's CloudWatch Logs role in {session.region_name} "
                "(account setting; kept when the stack is destroyed)."
            )
        except ClientError as error:
            # A new role takes a few seconds to be usable: API Gateway says it cannot assume it.
            if error_code(error) != "BadRequestException" or attempt == attempts - 1:
                raise
            sleep(3)
    raise AssertionError("unreachable")


def _sagemaker_quotas(service_quotas: Any) -> dict[str, float]:
    """Quota name -> applied value, for every SageMaker quota in the region."""
    found: dict[str, float] = {}
    for page in service_quotas.get_paginator("list_service_quotas").paginate(ServiceCode=SAGEMAKER_SERVICE_CODE):
        for quota in page["Quotas"]:
            found[quota["QuotaName"]] = quota["Value"]
    return found


def check_instance_quotas(session: Any, config: AppConfig) -> list[Check]:
    """One check per quota the configuration needs: (name, quota name, instances needed, config key)."""
    wanted = [("training instance", training_quota_name(config.training.instance_type), 1, "trainingInstanceType")]
    if config.training.spot:  # spot first; the on-demand quota above for the retry without spot capacity
        wanted.append(
            (
                "spot training instance",
                training_quota_name(config.training.instance_type, spot=True),
                1,
                "trainingInstanceType",
            )
        )
    wanted += [
        # Autoscaling may grow the endpoint to endpointMaxInstances (it starts with one instance).
        (
            "endpoint instance",
            f"{config.serving.instance_type} for endpoint usage",
            config.serving.max_instances,
            "endpointInstanceType",
        ),
    ]
    try:
        quotas = _sagemaker_quotas(session.client("service-quotas"))
    except (ClientError, BotoCoreError) as error:
        return [
            Check(
                name,
                False,
                f"cannot read SageMaker quotas ({error})",
                "allow servicequotas:ListServiceQuotas, or check the quota in the console",
                blocks_deploy=False,
            )
            for name, *_ in wanted
        ]
    checks = []
    for name, quota_name, needed, key in wanted:
        value = quotas.get(quota_name)
        if value is None:
            checks.append(
                Check(
                    name,
                    False,
                    f"'{quota_name}' is not offered in {session.region_name}",
                    f"choose another region or set {key} to a type offered there",
                    blocks_deploy=False,
                )
            )
        elif value < needed:
            checks.append(
                Check(
                    name,
                    False,
                    f"quota '{quota_name}' is {value:g}, {needed} needed",
                    f"request at least {needed} in Service Quotas > Amazon SageMaker > '{quota_name}'",
                    blocks_deploy=False,
                )
            )
        else:
            checks.append(
                Check(name, True, f"quota '{quota_name}' is {value:g} ({needed} needed)", blocks_deploy=False)
            )
    return checks


def account_checks(session: Any, config: AppConfig) -> list[Check]:
    """What the account and region must provide beyond the bucket (which `make deploy` chooses
    itself): the API Gateway logging role, a reused bucket's encryption, then the SageMaker quotas. New checks go here."""
    return [
        check_apigateway_logging_role(session),
        check_bucket_encryption(
            session.client("s3"), _bucket_in_use(session, config), config.storage.bucket_kms_key_arn
        ),
        *check_instance_quotas(session, config),
    ]


def run(session: Any, config: AppConfig, lock: JumpStartLock) -> list[Check]:
    credentials, account = check_credentials(session)
    region = check_region(session, lock)
    checks = [credentials, region]
    if account is None or not session.region_name:
        return checks
    if region.ok:
        checks.append(check_jumpstart(session, session.region_name, config=config))
    checks.append(check_bucket_quota(session, config))
    checks.extend(account_checks(session, config))
    return checks


def render(checks: Iterable[Check]) -> str:
    rows = [("check", "result", "detail")] + [(c.name, "PASS" if c.ok else "FAIL", c.detail) for c in checks]
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}" for r in rows]
    fixes = [f"- {c.name}: {c.fix}" for c in checks if not c.ok and c.fix]
    return "\n".join(lines + (["", "To fix:"] + fixes if fixes else []))
