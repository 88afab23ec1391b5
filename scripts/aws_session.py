"""The boto3 session the scripts and the CLI use for the user's AWS credentials."""

from __future__ import annotations

import os

import boto3


def user_session() -> boto3.Session:
    """A session for the user's credentials, with the region from AWS_DEFAULT_REGION or AWS_REGION.

    botocore reads only AWS_DEFAULT_REGION (or the profile); the CDK CLI and the newer AWS SDKs read
    AWS_REGION, which the README tells users to set, so both are honoured here.
    """
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or None
    return boto3.Session(region_name=region)
