"""The boto3 session the scripts and the CLI use for the user's AWS credentials, and the one place
that turns "these credentials, this profile, this region or this network do not work" into one
clear line (exit code 2 in every command, `make deploy` included)."""

from __future__ import annotations

import os
from typing import Optional

import boto3
from botocore import exceptions as aws

from dreambooth_shared.contract import error_code

# JSII (aws-cdk-lib's runtime) prints an 11-line Node end-of-life banner on Node 20 unless this is
# set; it is set in the process environment so the jsii kernel and `cdk` subprocesses inherit it.
JSII_SILENCE = "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"
NODE_VERSION_SILENCED = "20"

CREDENTIALS_FIX = (
    "run `aws configure`, pass --profile / set AWS_PROFILE, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
)
REGION_FIX = "pass --region or export AWS_REGION (for example us-east-1)"
# ClientError codes that mean "the credentials themselves are wrong or expired" (not "not allowed").
_BAD_CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "AuthFailure",
        "InvalidAccessKeyId",
        "RequestExpired",
        "InvalidToken",
        "TokenRefreshRequired",
    }
)


class AwsAccessProblem(Exception):
    """Credentials, profile, region or network do not work; the message is one line with the fix."""


def silence_jsii() -> None:
    os.environ.setdefault(JSII_SILENCE, NODE_VERSION_SILENCED)


def user_session(profile: Optional[str] = None, region: Optional[str] = None) -> boto3.Session:
    """A session for the user's credentials: --profile / --region first, then the environment.

    botocore reads only AWS_DEFAULT_REGION (or the profile); the CDK CLI and the newer AWS SDKs read
    AWS_REGION, which the README tells users to set, so both are honoured here.
    """
    region = region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or None
    try:
        return boto3.Session(profile_name=profile, region_name=region)
    except aws.BotoCoreError as error:
        raise AwsAccessProblem(access_problem(error) or str(error)) from None


def access_problem(error: BaseException) -> Optional[str]:
    """One line saying what is wrong with the AWS access and how to fix it; None for other errors."""
    if isinstance(error, AwsAccessProblem):
        return str(error)
    if isinstance(error, aws.ProfileNotFound):
        return (
            f"AWS profile {error.kwargs.get('profile')!r} not found in ~/.aws/config or ~/.aws/credentials: "
            "check --profile / AWS_PROFILE (`aws configure list-profiles`)"
        )
    if isinstance(error, (aws.NoCredentialsError, aws.PartialCredentialsError)):
        return f"no usable AWS credentials: {CREDENTIALS_FIX}"
    if isinstance(
        error,
        (
            aws.CredentialRetrievalError,
            aws.TokenRetrievalError,
            aws.SSOError,
            aws.UnauthorizedSSOTokenError,
            aws.InvalidConfigError,
        ),
    ):
        return f"AWS credentials could not be loaded ({error}): {CREDENTIALS_FIX}, or `aws sso login`"
    if isinstance(error, aws.NoRegionError):
        return f"no AWS region set: {REGION_FIX}"
    if isinstance(error, aws.InvalidRegionError):
        return f"{error.kwargs.get('region_name')!r} is not a valid AWS region name: {REGION_FIX}"
    if isinstance(
        error,
        (
            aws.EndpointConnectionError,
            aws.ConnectTimeoutError,
            aws.ReadTimeoutError,
            aws.SSLError,
            aws.ProxyConnectionError,
            aws.ConnectionClosedError,
        ),
    ):
        where = getattr(error, "kwargs", {}).get("endpoint_url", "")
        return (
            f"cannot reach AWS{' at ' + where if where else ''}: check the network, a proxy, "
            f"and that the region exists ({REGION_FIX})"
        )
    if isinstance(error, aws.ClientError):
        code = error_code(error)
        if code in _BAD_CREDENTIAL_CODES:
            message = error.response.get("Error", {}).get("Message", "")
            return f"AWS refused these credentials ({code}: {message}): {CREDENTIALS_FIX}, or refresh them"
    return None
