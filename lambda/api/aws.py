"""boto3 clients, created on first use and kept for the container's life (tests replace them)."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Callable

import boto3
from botocore.config import Config

# Standard retry mode backs off on throttling; the API's own answer stays well inside 29 s.
_API_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)


class Clients:
    def __init__(self, factory: Callable[..., Any] = boto3.client):
        self._factory = factory

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
