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
# signer role, taken for SIGNER_SESSION_S (the most AssumeRole gives a role session started
# from another role's) and used only while it lasts until the URL's stated `expires_at`, which
# the caller computes before asking for the signer (so imageUrlExpirySeconds may be 3600).
SIGNER_SESSION_S = 3600


class Clients:
    def __init__(self, factory: Callable[..., Any] = boto3.client, clock: Callable[[], float] = time.time,
                 region: str = "us-east-1"):
        self._factory = factory
        self._clock = clock
        self.region = region  # Settings.region: the function's own
        self._signer: Optional[Any] = None
        self._signer_expires = 0.0

    def signing_s3(self, role_arn: str, lifetime_s: int) -> Any:
        """An S3 client whose credentials stay valid for `lifetime_s` from now (or the function's own
        browser-facing client when no signer role is configured), on the bucket's regional host."""
        if not role_arn:
            return self.s3_browser
        if self._signer is None or self._signer_expires - self._clock() < lifetime_s:
            credentials = self.sts.assume_role(RoleArn=role_arn, RoleSessionName="image-urls",
                                               DurationSeconds=SIGNER_SESSION_S)["Credentials"]
            self._signer = self.browser_s3(
                aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"])
            self._signer_expires = credentials["Expiration"].timestamp()
        return self._signer

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
        return self._factory("s3", config=Config(signature_version="s3v4", retries={"mode": "standard"},
                                                 request_checksum_calculation="when_required",
                                                 response_checksum_validation="when_required"))

    @cached_property
    def s3_browser(self) -> Any:
        """For the presigned URLs a browser uses (image links, the page's photo uploads): the bucket's
        regional virtual host (https://<bucket>.s3.<region>.amazonaws.com/), which a new bucket answers
        at once, where the global host may redirect (307) for a while; the page's CSP allows that host."""
        return self.browser_s3()

    def browser_s3(self, **credentials: Any) -> Any:
        """A new S3 client on the bucket's regional virtual host (with these credentials, if given)."""
        return self._factory("s3", region_name=self.region, endpoint_url=f"https://s3.{self.region}.amazonaws.com",
                             config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}),
                             **credentials)

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
    def lambda_(self) -> Any:
        return self._factory("lambda", config=_API_CONFIG)

    @cached_property
    def stepfunctions(self) -> Any:
        return self._factory("stepfunctions", config=_API_CONFIG)
