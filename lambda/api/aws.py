"""boto3 clients, created on first use and kept for the container's life (tests replace them)."""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any, Callable, Optional

import boto3
from botocore.config import Config

# Standard retry mode backs off on throttling; the API's own answer stays well inside 29 s.
_API_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


# A presigned URL stops working when the credentials that signed it expire. Lambda's own role
# credentials carry no stated lifetime, so image URLs are signed with a session of the image
# signer role, taken for SIGNER_SESSION_S: an hour, the most STS gives a session assumed with a
# role's credentials (role chaining; the signer role's MaxSessionDuration cannot lengthen it).
# The rule (docs/api.md, Image URLs): a URL is signed to end at
# min(now + imageUrlExpirySeconds, session end - SIGNER_MARGIN_S), which the answer states as its
# `expires_at`, so no URL outlives its credentials. A session is reused while that end is at most
# signer_slack_s(expiry) short of the full lifetime (a tenth of it, at most SIGNER_SLACK_MAX_S);
# past that a new one is assumed. So a URL lives at least 90% of imageUrlExpirySeconds, and one
# AssumeRole serves every URL for about 4 minutes at the 3600 s default, 33 minutes at 1800 s.
SIGNER_SESSION_S = 3600
SIGNER_MARGIN_S = 10
SIGNER_SLACK_MAX_S = 300


def signer_slack_s(lifetime_s: int) -> int:
    """How much shorter than `lifetime_s` a URL may be signed for, to reuse a session."""
    return min(SIGNER_SLACK_MAX_S, lifetime_s // 10)


def addressing_style(bucket: str) -> str:
    """How browser URLs name the bucket: its regional virtual host (https://<bucket>.s3.<region>.
    amazonaws.com/), or path-style (https://s3.<region>.amazonaws.com/<bucket>/) for a name with
    dots, which S3's wildcard certificate (*.s3.<region>.amazonaws.com) does not cover (TLS fails).
    The pinned botocore makes the same choice for "virtual" over https; it is stated here so that no
    SDK version can make a dotted virtual host."""
    return "path" if "." in bucket else "virtual"


def bucket_sources(bucket: str, region: str) -> str:
    """The Content-Security-Policy sources of the URLs browsers get for the bucket: its virtual host,
    or for a dotted name the bucket's path on the regional host (the presigned POST's URL itself
    and everything under it)."""
    if addressing_style(bucket) == "path":
        return f"https://s3.{region}.amazonaws.com/{bucket} https://s3.{region}.amazonaws.com/{bucket}/"
    return f"https://{bucket}.s3.{region}.amazonaws.com"


class Clients:
    def __init__(
        self,
        factory: Callable[..., Any] = boto3.client,
        clock: Callable[[], float] = time.time,
        region: str = "us-east-1",
        bucket: str = "",
    ):
        self._factory = factory
        self._clock = clock
        self.region = region  # Settings.region: the function's own
        self.bucket = bucket  # Settings.bucket_name: how browser URLs name it (addressing_style)
        self._signer: Optional[Any] = None
        self._signer_expires = 0.0

    def signing_s3(self, role_arn: str, lifetime_s: int) -> tuple[Any, int]:
        """An S3 client on the bucket's regional host and the seconds from now its presigned URLs may
        be signed for: `lifetime_s`, or a little less near its session's end (the rule above). Without
        a signer role: the function's own browser-facing client, for `lifetime_s`."""
        if not role_arn:
            return self.s3_browser, lifetime_s
        now = self._clock()
        if self._signer is None or self._signer_expires - SIGNER_MARGIN_S - now < lifetime_s - signer_slack_s(
            lifetime_s
        ):
            credentials = self.sts.assume_role(
                RoleArn=role_arn, RoleSessionName="image-urls", DurationSeconds=SIGNER_SESSION_S
            )["Credentials"]
            self._signer = self.browser_s3(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
            )
            self._signer_expires = credentials["Expiration"].timestamp()
        return self._signer, max(1, min(lifetime_s, int(self._signer_expires - SIGNER_MARGIN_S - now)))

    @cached_property
    def sts(self) -> Any:
        return self._factory("sts", config=_API_CONFIG)

    @cached_property
    def dynamodb(self) -> Any:
        return self._factory("dynamodb", config=_API_CONFIG)

    @cached_property
    def s3(self) -> Any:
        # Checksums only where S3 requires them: the small request objects and JPEGs go over TLS, and
        # botocore's default CRC32 on every PutObject costs more than the rest of the call's own work.
        return self._factory(
            "s3",
            config=Config(
                signature_version="s3v4",
                retries={"mode": "standard"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    @cached_property
    def s3_browser(self) -> Any:
        """For the presigned URLs a browser uses (image links, the page's photo uploads): the bucket's
        regional host (its virtual host, or path-style for a dotted name: `addressing_style`), which a
        new bucket answers at once, where the global host may redirect (307) for a while; the page's
        CSP allows exactly that (`bucket_sources`)."""
        return self.browser_s3()

    def browser_s3(self, **credentials: Any) -> Any:
        """A new S3 client on the bucket's regional host (with these credentials, if given)."""
        return self._factory(
            "s3",
            region_name=self.region,
            endpoint_url=f"https://s3.{self.region}.amazonaws.com",
            config=Config(signature_version="s3v4", s3={"addressing_style": addressing_style(self.bucket)}),
            **credentials,
        )

    @cached_property
    def sagemaker(self) -> Any:
        return self._factory("sagemaker", config=_API_CONFIG)

    @cached_property
    def sagemaker_runtime(self) -> Any:
        return self._factory("sagemaker-runtime", config=_API_CONFIG)  # InvokeEndpointAsync only queues

    @cached_property
    def application_autoscaling(self) -> Any:
        return self._factory("application-autoscaling", config=_API_CONFIG)

    @cached_property
    def cloudwatch(self) -> Any:
        return self._factory("cloudwatch", config=_API_CONFIG)

    @cached_property
    def lambda_(self) -> Any:
        return self._factory("lambda", config=_API_CONFIG)

    @cached_property
    def stepfunctions(self) -> Any:
        return self._factory("stepfunctions", config=_API_CONFIG)
