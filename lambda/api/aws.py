"""boto3 clients, created on first use and kept for the container's life (tests replace them)."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Callable

import boto3
from botocore.config import Config

# Standard retry mode backs off on throttling; the API's own answer stays well inside 29 s.
_API_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)
# InvokeEndpoint may take up to 60 s before SageMaker itself gives up.
_MODEL_CONFIG = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=70)


class Clients:
    def __init__(self, factory: Callable[..., Any] = boto3.client, region: str = "us-east-1"):
        self._factory = factory
        self.region = region  # Settings.region: the function's own

    @cached_property
    def dynamodb(self) -> Any:
        return self._factory("dynamodb", config=_API_CONFIG)

    @cached_property
    def s3(self) -> Any:
        return self._factory("s3", config=Config(signature_version="s3v4", retries={"mode": "standard"}))

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
        return self._factory("sagemaker-runtime", config=_MODEL_CONFIG)

    @cached_property
    def lambda_(self) -> Any:
        return self._factory("lambda", config=_API_CONFIG)

    @cached_property
    def stepfunctions(self) -> Any:
        return self._factory("stepfunctions", config=_API_CONFIG)
