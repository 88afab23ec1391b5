"""Where the deployment is: the bucket, API URL and API credentials, from the stack's outputs.

DescribeStacks gives the outputs `BucketName`, `ApiUrl` and, with `apiAuth=apiKey`, `ApiKeyId`
(their logical ids are fixed in stacks/dreambooth_stack.py). The key's value is read with
API Gateway GetApiKey(includeValue). Without `ApiKeyId` the API uses IAM auth and requests are
signed with SigV4 from the same AWS session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from scripts.cli.api_client import ApiClient, SigV4Signer

BUCKET_OUTPUT, API_URL_OUTPUT, API_KEY_OUTPUT = "BucketName", "ApiUrl", "ApiKeyId"
_API_REGION = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")


class NotDeployed(Exception):
    """The stack or one of its outputs is missing: nothing to talk to (exit code 3)."""


class NoAwsAccess(Exception):
    """No credentials or no region: the caller's configuration (exit code 2)."""


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
        raise NoAwsAccess("no AWS region set: export AWS_REGION (or AWS_DEFAULT_REGION), or set it in your profile")
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except NoCredentialsError:
        raise NoAwsAccess("no AWS credentials: run `aws configure`, set AWS_PROFILE, or export "
                          "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") from None
    except NoRegionError:
        raise NoAwsAccess("no AWS region set: export AWS_REGION") from None
    except ClientError as error:
        if "does not exist" in str(error):
            raise NotDeployed(f"stack {stack_name} is not deployed in {region}: run `make deploy` "
                              "(or pass --stack / -c stackName=..., and check AWS_REGION)") from None
        raise
    stack = stacks[0]
    if stack.get("StackStatus", "").endswith("_IN_PROGRESS") and not stack.get("Outputs"):
        raise NotDeployed(f"stack {stack_name} is {stack['StackStatus']}; try again when it is complete")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return Deployment(stack_name, region, outputs)


def api_client(session: Any, deployment: Deployment, **options: Any) -> ApiClient:
    """An API client authenticated as the stack's auth mode asks: its API key, or SigV4."""
    url = deployment.api_url
    key_id = deployment.api_key_id
    if key_id:
        try:
            value = session.client("apigateway").get_api_key(apiKey=key_id, includeValue=True).get("value")
        except (ClientError, BotoCoreError) as error:
            raise NotDeployed(f"cannot read the API key {key_id} of stack {deployment.stack_name}: {error}") from None
        if not value:
            raise NotDeployed(f"the API key {key_id} of stack {deployment.stack_name} has no value")
        return ApiClient(url, api_key=value, **options)
    credentials = session.get_credentials()
    if credentials is None:
        raise NoAwsAccess("no AWS credentials to sign API requests with (apiAuth=iam)")
    match = _API_REGION.search(url)
    return ApiClient(url, signer=SigV4Signer(credentials, match.group(1) if match else deployment.region),
                     **options)
