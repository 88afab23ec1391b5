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
    def __init__(self, factory: Callable[..., Any] = boto3.client, clock: Callable[[], float] = time.time):
        self._factory = factory
        self._clock = clock
        self._signer: Optional[Any] = None
        self._signer_expires = 0.0

    def signing_s3(self, role_arn: str, lifetime_s: int) -> Any:
        """An S3 client whose credentials stay valid for `lifetime_s` from now (or the function's own
        client when no signer role is configured)."""
        if not role_arn:
            return self.s3
        if self._signer is None or self._signer_expires - self._clock() < lifetime_s:
            credentials = self.sts.assume_role(RoleArn=role_arn, RoleSessionName="image-urls",
                                               DurationSeconds=SIGNER_SESSION_S)["Credentials"]
            self._signer = self._factory(
                "s3", aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"], config=Config(signature_version="s3v4"))
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
    def sagemaker(self) -> Any:
        return self._factory("sagemaker", config=_API_CONFIG)

    @cached_property
    def sagemaker_runtime(self) -> Any:
        return self._factory("sagemaker-runtime", config=_API_CONFIG)  # InvokeEndpointAsync only queues

    @cached_property
    def stepfunctions(self) -> Any:
        return self._factory("stepfunctions", config=_API_CONFIG)
