"""The pipeline's SageMaker endpoint ARNs, built in one place (serving, the API and the cleanup grant on them)."""

from __future__ import annotations

from aws_cdk import Stack, Token
from constructs import IConstruct


def endpoint_arn(scope: IConstruct, endpoint_name: str) -> str:
    """The endpoint's ARN (SageMaker writes endpoint names in lower case inside ARNs)."""
    name = endpoint_name if Token.is_unresolved(endpoint_name) else endpoint_name.lower()
    return Stack.of(scope).format_arn(service="sagemaker", resource="endpoint", resource_name=name)


def endpoint_config_arns(scope: IConstruct) -> str:
    """Every endpoint config's ARN (they are named per model version at run time)."""
    return Stack.of(scope).format_arn(service="sagemaker", resource="endpoint-config", resource_name="*")
