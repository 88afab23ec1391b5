"""The public Powertools for AWS Lambda layer every function of the stack runs with, defined once.

AWS numbers layer versions, not Powertools releases: `POWERTOOLS_RELEASE` records which release
layer `POWERTOOLS_LAYER_VERSION` holds, and the tests run that release (requirements-dev.txt pins
it; tests/test_powertools_layer.py fails when the pin, the installed package or this record
drift apart). The pairing itself cannot be checked offline: with credentials,
`aws lambda get-layer-version-by-arn --arn <layer ARN>` names the release in its Description.
"""

from __future__ import annotations

from aws_cdk import Aws, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

POWERTOOLS_ACCOUNT = "017000801446"
POWERTOOLS_LAYER_VERSION = 21
POWERTOOLS_RELEASE = "3.37.0"
"""UNVERIFIED: the release the tests run; not yet confirmed to be what layer 21 holds (see above)."""


def powertools_layer(scope: Construct, construct_id: str) -> lambda_.ILayerVersion:
    """The python3.13 x86_64 Powertools layer in the stack's region."""
    return lambda_.LayerVersion.from_layer_version_arn(
        scope,
        construct_id,
        f"arn:{Aws.PARTITION}:lambda:{Stack.of(scope).region}:{POWERTOOLS_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-python313-x86_64:{POWERTOOLS_LAYER_VERSION}",
    )
