"""A browser's presigned POST (the web page's photo uploads) is judged on the harness as S3 judges it:
as the principal that signed it, with that principal's policies, after its SigV4 signature and its
POST policy (key, content type, content-length range, no field the policy does not cover)."""

from __future__ import annotations

import boto3
import pytest
import requests
from botocore.config import Config

from emulator import PipelineHarness, synthesize
from emulator.pipeline_harness import BUCKET_NAME, FAST_CONTEXT

KEY = "uploads/dog/abc123/dog0.jpg"


@pytest.fixture(scope="module")
def synthesized():
    return synthesize(FAST_CONTEXT)


def presigned_post(h: PipelineHarness, role: str, key: str = KEY) -> dict:
    with h.iam.acting_as(role):
        s3 = boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url="https://s3.us-east-1.amazonaws.com",
            config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}),
        )
        return s3.generate_presigned_post(
            Bucket=BUCKET_NAME,
            Key=key,
            Fields={"Content-Type": "image/jpeg"},
            Conditions=[{"Content-Type": "image/jpeg"}, ["content-length-range", 1, 1000]],
            ExpiresIn=600,
        )


def send(post: dict, size: int = 100, **fields: str) -> int:
    return requests.post(
        post["url"],
        data={**post["fields"], **fields},
        files={"file": ("dog0.jpg", b"x" * size, "image/jpeg")},
        timeout=10,
    ).status_code


def stored(h: PipelineHarness, key: str) -> bool:
    listed = h.client("s3").list_objects_v2(Bucket=BUCKET_NAME, Prefix=key).get("Contents", [])
    return any(o["Key"] == key for o in listed)


def test_a_post_signed_by_the_api_role_within_its_policy_is_stored(synthesized):
    with PipelineHarness(synthesized=synthesized) as h:
        assert send(presigned_post(h, h.api_function.role)) == 204
        assert stored(h, KEY) and h.iam.denials == []


@pytest.mark.parametrize(
    "change, refusal",
    [
        ({"key": "datasets/dog/dog0.jpg"}, "does not satisfy"),  # another key than the policy's
        ({"Content-Type": "text/html"}, "does not satisfy"),  # another content type
        ({"size": 5000}, "content length 5000 outside 1-1000"),  # over the size range
        ({"x-amz-meta-owner": "me"}, "extra input fields"),  # a field the policy does not cover
        ({"x-amz-signature": "0" * 64}, "signature does not match"),  # a forged signature
    ],
)
def test_a_post_outside_its_policy_is_refused(synthesized, change, refusal):
    with PipelineHarness(synthesized=synthesized) as h:
        h.iam.expect_denials(refusal)
        size = change.pop("size", 100)
        assert send(presigned_post(h, h.api_function.role), size=size, **change) == 403
        assert not stored(h, KEY) and not stored(h, "datasets/dog/dog0.jpg")
        assert any(refusal in str(d) for d in h.iam.denials)


def test_a_post_signed_by_a_role_without_the_grant_is_refused(synthesized):
    with PipelineHarness(synthesized=synthesized) as h:
        h.iam.expect_denials("s3:PutObject")
        # The API role may write the staging prefix only; datasets/ is the commit's (CopyObject) job
        post = presigned_post(h, h.api_function.role, key="models/x.jpg")
        assert send(post) == 403 and not stored(h, "models/x.jpg")
