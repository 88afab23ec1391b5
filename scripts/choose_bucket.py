"""Deploy-time choice between creating the data bucket and reusing one (S3 bucket quota).

Accounts at their S3 bucket quota fail with TooManyBuckets when a stack creates a bucket. Before
a deploy, `decide()` counts the account's buckets against its quota (Service Quotas, with the
documented default when the quota cannot be read). With room left it decides to create; at or
near the quota it reuses a bucket this project created before (found by its tag); with none to
reuse it raises `NoBucketAvailable`, whose message lists the user's options. The decision is
recorded in cdk.context.json, as CDK records its own lookups, so later synths reproduce it with
no AWS call.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

from botocore.exceptions import ClientError

from stacks.config import PROJECT_TAG_KEY, PROJECT_TAG_VALUE, STACK_TAG_KEY, BucketDecision, bucket_decision_key

log = logging.getLogger(__name__)

S3_SERVICE_CODE = "s3"
BUCKET_QUOTA_CODE = "L-DC2B2D3D"  # "General purpose buckets", per account
# AWS's documented default for accounts that never asked for more (raised from 100 in 2024).
DOCUMENTED_DEFAULT_BUCKET_QUOTA = 10_000


class NoBucketAvailable(RuntimeError):
    """The account is at its bucket quota and holds no bucket this project can reuse."""


def bucket_quota(service_quotas: Any) -> tuple[int, str]:
    """The account's bucket quota and where the number came from."""
    try:
        quota = service_quotas.get_service_quota(ServiceCode=S3_SERVICE_CODE, QuotaCode=BUCKET_QUOTA_CODE)
        return int(quota["Quota"]["Value"]), "Service Quotas (applied)"
    except ClientError as error:
        log.info("Applied S3 bucket quota not readable (%s); trying the AWS default", error)
    try:
        paginator = service_quotas.get_paginator("list_aws_default_service_quotas")
        for page in paginator.paginate(ServiceCode=S3_SERVICE_CODE):
            for quota in page["Quotas"]:
                if quota["QuotaCode"] == BUCKET_QUOTA_CODE:
                    return int(quota["Value"]), "Service Quotas (AWS default)"
    except ClientError as error:
        log.info("Default S3 bucket quota not readable (%s)", error)
    return DOCUMENTED_DEFAULT_BUCKET_QUOTA, "documented default (Service Quotas not readable)"


def bucket_count(s3: Any) -> int:
    count, token = 0, None
    while True:
        page = s3.list_buckets(**({"ContinuationToken": token} if token else {}))
        count += len(page.get("Buckets", []))
        token = page.get("ContinuationToken")
        if not token:
            return count


def _stack_exists(cloudformation: Any, name: str) -> bool:
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError:
        return False
    return any(s["StackStatus"] != "DELETE_COMPLETE" for s in stacks)


def project_buckets(tagging: Any) -> list[tuple[str, dict[str, str]]]:
    """Buckets in this region that carry the project's tag, with their tags."""
    found = []
    paginator = tagging.get_paginator("get_resources")
    pages = paginator.paginate(
        TagFilters=[{"Key": PROJECT_TAG_KEY, "Values": [PROJECT_TAG_VALUE]}],
        ResourceTypeFilters=["s3"],
    )
    for page in pages:
        for item in page["ResourceTagMappingList"]:
            name = item["ResourceARN"].split(":::", 1)[-1]
            found.append((name, {t["Key"]: t["Value"] for t in item.get("Tags", [])}))
    return sorted(found)


def decide(
    *,
    stack_name: str,
    margin: int,
    s3: Any,
    service_quotas: Any,
    tagging: Any,
    cloudformation: Any,
) -> BucketDecision:
    """Create or reuse; raises NoBucketAvailable when neither is possible."""
    quota, source = bucket_quota(service_quotas)
    count = bucket_count(s3)
    headroom = quota - count
    summary = f"{count} of {quota} buckets in use ({source})"
    if headroom > margin:
        return BucketDecision(action="create", reason=f"{summary}: room to create one")

    candidates = project_buckets(tagging)
    own = [name for name, tags in candidates if tags.get(STACK_TAG_KEY) == stack_name]
    if own and _stack_exists(cloudformation, stack_name):
        # This stack already owns its bucket: keep it; nothing new is created.
        return BucketDecision(action="create", reason=f"{summary}: the stack already owns {own[0]}")
    # Never take over a bucket that another live deployment of this project still uses.
    free = [
        name
        for name, tags in candidates
        if tags.get(STACK_TAG_KEY) in (None, stack_name) or not _stack_exists(cloudformation, tags[STACK_TAG_KEY])
    ]
    if free:
        chosen = (own or free)[0]
        return BucketDecision(
            action="reuse",
            bucket_name=chosen,
            reason=f"{summary}: reusing {chosen}, left by an earlier deployment of this project",
        )
    raise NoBucketAvailable(
        f"This account is at its S3 bucket quota ({summary}; margin {margin}) and holds no bucket "
        "left by an earlier deployment of this project. Nothing was deployed. Options:\n"
        "  1. Use an existing bucket: npx cdk deploy -c bucketName=<bucket>  (or set bucketName in cdk.json);\n"
        "     the bucket is not reconfigured, only EventBridge notifications are switched on.\n"
        "  2. Delete an unused bucket, then deploy again.\n"
        f"  3. Ask for a higher quota: Service Quotas > Amazon S3 > General purpose buckets ({BUCKET_QUOTA_CODE}).\n"
        "  4. Lower the safety margin if you are sure one more bucket fits: -c bucketQuotaMargin=0."
    )


def record(context_file: Path, stack_name: str, account: str, region: str, decision: BucketDecision) -> str:
    """Write the decision into cdk.context.json (kept sorted, other keys untouched)."""
    key = bucket_decision_key(stack_name, account, region)
    data = json.loads(context_file.read_text()) if context_file.exists() else {}
    data[key] = decision.to_context()
    context_file.write_text(json.dumps(dict(sorted(data.items())), indent=2) + "\n")
    return key


def recorded(context_file: Path, stack_name: str, account: str, region: str) -> Optional[BucketDecision]:
    if not context_file.exists():
        return None
    key = bucket_decision_key(stack_name, account, region)
    raw = json.loads(context_file.read_text()).get(key)
    return BucketDecision.from_context(key, raw) if raw is not None else None
