"""Where the deployment is: the bucket, API URL and API credentials, from the stack's outputs.

DescribeStacks gives the outputs `BucketName`, `ApiUrl` and, with `apiAuth=apiKey`, `ApiKeyId`
(names in stacks/outputs.py; their logical ids are fixed in stacks/stack.py). The key's value is read with
API Gateway GetApiKey(includeValue). Without `ApiKeyId` the API uses IAM auth and requests are
signed with SigV4 from the same AWS session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from botocore.exceptions import BotoCoreError, ClientError

from scripts.aws_session import CREDENTIALS_FIX, REGION_FIX, AwsAccessProblem, access_problem
from scripts.cli.api_client import ApiClient, SigV4Signer
from stacks import outputs

BUCKET_OUTPUT, API_URL_OUTPUT, API_KEY_OUTPUT = outputs.BUCKET_NAME, outputs.API_URL, outputs.API_KEY_ID
_API_REGION = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")


class NotDeployed(Exception):
    """The stack or one of its outputs is missing: nothing to talk to (exit code 3)."""


@dataclass(frozen=True)
class Deployment:
    stack_name: str
    region: str
    outputs: dict[str, str]

    @property
    def bucket(self) -> str:
        return self._require(BUCKET_OUTPUT)

    @property
    def api_url(self) -> str:
        return self._require(API_URL_OUTPUT)

    @property
    def api_key_id(self) -> Optional[str]:
        return self.outputs.get(API_KEY_OUTPUT)

    def _require(self, key: str) -> str:
        value = self.outputs.get(key)
        if not value:
            raise NotDeployed(
                f"stack {self.stack_name} in {self.region} has no output {key!r} "
                "(deployed with an older version of this project? run `make deploy`)"
            )
        return value


def find(session: Any, stack_name: str) -> Deployment:
    region = session.region_name
    if not region:
        raise AwsAccessProblem(f"no AWS region set: {REGION_FIX}")
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            raise NotDeployed(
                f"stack {stack_name} is not deployed in {region}: run `make deploy` "
                "(or pass --stack / -c stackName=..., and check AWS_REGION)"
            ) from None
        raise
    stack = stacks[0]
    if stack.get("StackStatus", "").endswith("_IN_PROGRESS") and not stack.get("Outputs"):
        raise NotDeployed(f"stack {stack_name} is {stack['StackStatus']}; try again when it is complete")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return Deployment(stack_name, region, outputs)


def api_key(session: Any, deployment: Deployment) -> Optional[str]:
    """The API key's value (GetApiKey includeValue); None when the stack uses IAM auth."""
    key_id = deployment.api_key_id
    if not key_id:
        return None
    try:
        value = session.client("apigateway").get_api_key(apiKey=key_id, includeValue=True).get("value")
    except (ClientError, BotoCoreError) as error:
        if access_problem(error):
            raise
        raise NotDeployed(f"cannot read the API key {key_id} of stack {deployment.stack_name}: {error}") from None
    if not value:
        raise NotDeployed(f"the API key {key_id} of stack {deployment.stack_name} has no value")
    return value


def api_client(session: Any, deployment: Deployment, **options: Any) -> ApiClient:
    """An API client authenticated as the stack's auth mode asks: its API key, or SigV4."""
    url = deployment.api_url
    value = api_key(session, deployment)
    if value:
        return ApiClient(url, api_key=value, **options)
    credentials = session.get_credentials()
    if credentials is None:
        raise AwsAccessProblem(f"no AWS credentials to sign API requests with (apiAuth=iam): {CREDENTIALS_FIX}")
    match = _API_REGION.search(url)
    return ApiClient(url, signer=SigV4Signer(credentials, match.group(1) if match else deployment.region), **options)
