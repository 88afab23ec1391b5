"""Quota-aware bucket choice, against moto's S3, tagging, CloudFormation and Service Quotas.

moto's Service Quotas only knows VPC quotas; `s3_quota` teaches it an applied S3 bucket quota
(tests/quota_harness.py), the one thing the harness adds. Everything else is moto answering the
real API calls.
"""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from scripts import choose_bucket
from scripts.choose_bucket import BUCKET_QUOTA_CODE, NoBucketAvailable, decide
from stacks.config import PROJECT_TAG_KEY, PROJECT_TAG_VALUE, STACK_TAG_KEY, bucket_decision_key
from tests.quota_harness import QuotaHarness

STACK = "DreamBoothPipeline"


@pytest.fixture
def aws():
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


@pytest.fixture
def s3_quota(monkeypatch):
    harness = QuotaHarness().install(monkeypatch)

    def set_quota(value: int) -> None:
        harness.set("s3", BUCKET_QUOTA_CODE, "General purpose buckets", value)

    return set_quota


def make_buckets(session, count, prefix="other-bucket"):
    s3 = session.client("s3")
    for i in range(count):
        s3.create_bucket(Bucket=f"{prefix}-{i:03d}")


def tag_as_project(session, name, stack_name=None):
    tags = [{"Key": PROJECT_TAG_KEY, "Value": PROJECT_TAG_VALUE}]
    if stack_name:
        tags.append({"Key": STACK_TAG_KEY, "Value": stack_name})
    session.client("s3").create_bucket(Bucket=name)
    session.client("s3").put_bucket_tagging(Bucket=name, Tagging={"TagSet": tags})


def run_decide(session, margin=2, stack_name=STACK):
    return decide(
        stack_name=stack_name,
        margin=margin,
        s3=session.client("s3"),
        service_quotas=session.client("service-quotas"),
        tagging=session.client("resourcegroupstaggingapi"),
        cloudformation=session.client("cloudformation"),
    )


def test_under_quota_creates(aws, s3_quota):
    s3_quota(10)
    make_buckets(aws, 5)
    decision = run_decide(aws)
    assert decision.action == "create" and decision.bucket_name is None
    assert "5 of 10 buckets" in decision.reason and "applied" in decision.reason


def test_at_quota_reuses_a_bucket_left_by_an_earlier_deployment(aws, s3_quota):
    # Given an account at its quota of 10, one of them retained from a destroyed deployment
    s3_quota(10)
    make_buckets(aws, 9)
    tag_as_project(aws, "dreambooth-old-data", stack_name=STACK)
    # When the deploy-time check runs
    decision = run_decide(aws)
    # Then that bucket is reused
    assert decision.action == "reuse" and decision.bucket_name == "dreambooth-old-data"


def test_within_margin_counts_as_at_quota(aws, s3_quota):
    s3_quota(10)
    make_buckets(aws, 7)
    tag_as_project(aws, "dreambooth-old-data")
    assert run_decide(aws, margin=2).action == "reuse"
    assert run_decide(aws, margin=1).action == "create"


def test_at_quota_without_a_project_bucket_stops_with_options(aws, s3_quota):
    s3_quota(10)
    make_buckets(aws, 10)
    with pytest.raises(NoBucketAvailable) as raised:
        run_decide(aws)
    message = str(raised.value)
    assert "10 of 10 buckets" in message and "Nothing was deployed" in message
    assert "bucketName" in message and BUCKET_QUOTA_CODE in message


def test_a_bucket_of_another_live_deployment_is_never_taken(aws, s3_quota):
    # Given a full account where the only project bucket belongs to a stack that still exists
    s3_quota(5)
    make_buckets(aws, 4)
    tag_as_project(aws, "prod-data", stack_name="ProdDreamBooth")
    aws.client("cloudformation").create_stack(
        StackName="ProdDreamBooth",
        TemplateBody=json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}),
    )
    # Then a deployment under another name does not take it
    with pytest.raises(NoBucketAvailable):
        run_decide(aws, stack_name="DevDreamBooth")


def test_a_live_stack_keeps_its_own_bucket(aws, s3_quota):
    s3_quota(5)
    make_buckets(aws, 4)
    tag_as_project(aws, "my-data", stack_name=STACK)
    aws.client("cloudformation").create_stack(
        StackName=STACK,
        TemplateBody=json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}}),
    )
    decision = run_decide(aws)
    assert decision.action == "create" and "already owns my-data" in decision.reason


def test_unreadable_quota_falls_back_to_documented_default(aws):
    # moto answers NoSuchResource for S3 quotas, as an account without access would fail.
    make_buckets(aws, 3)
    quota, source = choose_bucket.bucket_quota(aws.client("service-quotas"))
    assert quota == choose_bucket.DOCUMENTED_DEFAULT_BUCKET_QUOTA and "documented default" in source
    assert run_decide(aws).action == "create"


def test_decision_is_recorded_like_a_cdk_lookup(tmp_path, aws, s3_quota):
    s3_quota(10)
    make_buckets(aws, 9)
    tag_as_project(aws, "dreambooth-old-data")
    context_file = tmp_path / "cdk.context.json"
    context_file.write_text(json.dumps({"vpc-provider:account=1:region=us-east-1": {"keep": "me"}}))
    decision = run_decide(aws)
    key = choose_bucket.record(context_file, STACK, "123456789012", "us-east-1", decision)
    data = json.loads(context_file.read_text())
    assert key == bucket_decision_key(STACK, "123456789012", "us-east-1")
    assert data[key]["action"] == "reuse" and data[key]["bucketName"] == "dreambooth-old-data"
    assert data["vpc-provider:account=1:region=us-east-1"] == {"keep": "me"}
    assert choose_bucket.recorded(context_file, STACK, "123456789012", "us-east-1") == decision
