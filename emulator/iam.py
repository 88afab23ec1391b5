"""IAM on the emulator: every call runs with the credentials of the role that makes it in AWS.

`IamEnforcement` takes the synthesized template's roles and policies into moto's IAM (trust
policy, inline `AWS::IAM::Policy` documents, `AWS::IAM::ManagedPolicy` attachments, intrinsics
resolved), assumes each role with moto's STS, and then switches moto's request authorization on
(`settings.INITIAL_NO_AUTH_ACTION_COUNT = 0`, what `set_initial_no_auth_action_count(0)` does).
From then on every request is authenticated by moto (access key and session token -> IAM user or
assumed role, inline and attached policies collected from moto's IAM; moto's SigV4 signature
recomputation is skipped, as it wrongly refuses some REST requests with a query string) and
authorized here:

- `acting_as(role)` (a thread-local identity) decides which credentials a boto3 client created
  on that thread gets. The harness uses it for each Lambda handler (import and invocation) and
  the API function; Step Functions' task clients get the credentials of the state machine's
  role (moto's own clients sign with a dummy key); the harness and the tests act as an
  administrator user (`harness-admin`, `*` on `*`), as the operator's CLI does.
- moto 5.2.5 passes a resource ARN to its policy check only for S3, SQS, IAM and STS (everything
  else is checked against `*`, so no resource-scoped statement would ever match), maps no API
  operation to its IAM action (`Invoke` vs `lambda:InvokeFunction`, S3's `ListObjectsV2` vs
  `s3:ListBucket`, CloudWatch's signing name `monitoring`), evaluates conditions only for
  `StringEquals` in trust policies (every other condition is treated as met), and knows nothing
  of `iam:PassRole`. `_required()` computes, from the request moto received, the IAM action(s),
  resource ARN(s) and condition keys AWS's authorization would use, and `evaluate()` applies
  AWS's policy logic (explicit Deny wins; Action/NotAction, Resource/NotResource wildcards;
  the condition operators below, with `...IfExists` and `ForAnyValue:`/`ForAllValues:`). A
  condition operator this module does not know fails the call (so a gap is seen, not skipped).
- Condition keys supplied: `s3:prefix`, `s3:delimiter` (ListBucket), `iam:PassedToService`
  (PassRole), `kms:ViaService` and `kms:EncryptionContext:aws:s3:arn` (S3 reads/writes of
  SSE-KMS objects), `kms:ViaService` and `kms:EncryptionContext:aws:sns:topicArn` (publishes to
  encrypted topics), `aws:RequestTag/<k>` and `aws:TagKeys` (SageMaker creates with Tags),
  `aws:ResourceTag/<k>` and `sagemaker:ResourceTag/<k>` (existing SageMaker models, endpoint
  configs, endpoints and training jobs, read from moto whatever the case of the name: AWS's ARNs
  are lower case, moto files the name as created), `cloudwatch:namespace` (PutMetricData),
  `dynamodb:LeadingKeys` (item requests by `Key` on a table with a partition key only).
  Any other key is absent, so a condition on it fails (or passes for `...IfExists` / negated
  operators), as AWS treats a key the request does not carry.
- Extra authorizations AWS makes and moto does not: `iam:PassRole` on the role a SageMaker
  CreateTrainingJob / CreateModel passes; the trust policy of a role assumed with AssumeRole;
  a presigned URL is authorized as its signer and refused once its own expiry or its signing
  session's has passed; a presigned POST (browser form) likewise, after its SigV4 signature and
  its POST policy (expiration, every condition, no field the policy does not cover) are checked;
  S3's use of a customer key (SSE-KMS, the object's own key or the bucket's default), as the S3 API
  reference states it per operation: `kms:Decrypt` to read an object (GetObject, not HeadObject),
  the source of a CopyObject / UploadPartCopy, and for each UploadPart / UploadPartCopy;
  `kms:GenerateDataKey` to write one (PutObject, a browser-form POST, the destination of a
  CopyObject, CreateMultipartUpload), unless the write asks for SSE-S3 itself; the copy source's
  `s3:GetObject` (moto names every object write PutObject: the request's shape tells them apart);
  `kms:GenerateDataKey` and `kms:Decrypt` on the topic's key for an SNS Publish to a topic
  encrypted with a customer key (the AWS-managed aws/s3 and aws/sns keys are not checked: their key
  policies let the account's principals use them; SageMaker cannot publish with aws/sns at all,
  which is not modelled); `authorize_role` for what a service checks as a role with no request of
  the role's own (the managed rule of `createTrainingJob.sync`, see moto_patches.py).

Every refusal is answered as AWS answers it (AccessDenied) and recorded in `denials`; the
harness fails the test at exit when any refusal was not expected (`expect_denials()`), so a
handler that catches the error and carries on cannot hide a missing grant.

Not evaluated (still unseen): resource-based policies (bucket policies, KMS key policies, the
SNS topic policy, Lambda resource policies: EventBridge's invocation of a function is made by
the harness as the administrator), permission boundaries and SCPs, session policies,
resource-tag conditions outside SageMaker, VPC, source-IP and `aws:SecureTransport` conditions, AWS-managed policies (`AWSLambdaBasicExecutionRole` only covers
CloudWatch Logs, which the handlers do not call on the harness), and calls AWS services make
with their own service-linked roles. Application Auto Scaling and CloudWatch metric reads are
authorized on `*` (their IAM actions have no resource types either).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence
from unittest import mock
from urllib.parse import parse_qs, unquote, urlparse

import boto3

ADMIN_USER = "harness-admin"
_IDENTITY = threading.local()

# Request signing names whose IAM prefix differs.
_IAM_PREFIX = {"monitoring": "cloudwatch", "execute-api": "execute-api", "states": "states"}
# API operation -> IAM action, where they differ (per service's IAM prefix).
_ACTION_NAMES = {
    "lambda": {"Invoke": "InvokeFunction", "InvokeAsync": "InvokeFunction"},
    "s3": {
        "ListObjects": "ListBucket",
        "ListObjectsV2": "ListBucket",
        "ListObjectVersions": "ListBucketVersions",
        "HeadObject": "GetObject",
        "HeadBucket": "ListBucket",
        "CreateMultipartUpload": "PutObject",
        "UploadPart": "PutObject",
        "CompleteMultipartUpload": "PutObject",
        "ListMultipartUploads": "ListBucketMultipartUploads",
        "GetBucketEncryption": "GetEncryptionConfiguration",
        "PutBucketEncryption": "PutEncryptionConfiguration",
        "GetBucketNotificationConfiguration": "GetBucketNotification",
        "PutBucketNotificationConfiguration": "PutBucketNotification",
        "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
        "GetBucketAccelerateConfiguration": "GetAccelerateConfiguration",
        "DeleteObjects": "DeleteObject",
    },
}


@dataclass(frozen=True)
class Denial:
    """One request refused: who asked, for what, on what."""

    principal: str
    action: str
    resource: str

    def __str__(self) -> str:
        return f"AccessDenied: {self.principal} is not authorized to perform {self.action} on {self.resource}"


@dataclass(frozen=True)
class Check:
    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)


class UnsupportedCondition(AssertionError):
    """A policy uses a condition operator this module cannot evaluate."""


# ---------------------------------------------------------------------------------------------
# Policy evaluation (AWS's logic, identity policies only)
# ---------------------------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcard(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _string_op(base: str) -> Callable[[str, str], bool]:
    return {
        "StringEquals": lambda expected, actual: actual == expected,
        "StringEqualsIgnoreCase": lambda expected, actual: actual.lower() == expected.lower(),
        "StringLike": lambda expected, actual: _wildcard(expected, actual),
        "ArnEquals": lambda expected, actual: actual == expected,
        "ArnLike": lambda expected, actual: _wildcard(expected, actual),
    }[base]


def _condition_met(operator: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    if operator == "Null":
        present = key in context
        return (str(expected).lower() == "true") != present
    qualifier, _, operator = operator.rpartition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator[: -len("IfExists")] if if_exists else operator
    negated = operator in (
        "StringNotEquals",
        "StringNotLike",
        "ArnNotEquals",
        "ArnNotLike",
        "StringNotEqualsIgnoreCase",
    )
    base = operator.replace("Not", "", 1) if negated else operator
    if base == "Bool":
        test = lambda e, a: str(a).lower() == str(e).lower()  # noqa: E731
    elif base in ("StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike"):
        test = _string_op(base)
    else:
        raise UnsupportedCondition(f"condition operator {operator} is not evaluated by emulator/iam.py")
    if key not in context:
        return if_exists or negated
    actual = [str(v) for v in _as_list(context[key])]
    expected_values = [str(v) for v in _as_list(expected)]
    if qualifier == "ForAllValues":
        matched = all(any(test(e, a) for e in expected_values) for a in actual)
    else:  # single-valued keys and ForAnyValue
        matched = any(test(e, a) for e in expected_values for a in actual)
    return not matched if negated else matched


def statement_applies(statement: Mapping[str, Any], check: Check) -> bool:
    """Does this statement's Action/Resource/Condition cover the request?"""
    if "Action" in statement:
        if not any(_wildcard(a, check.action, case_sensitive=False) for a in _as_list(statement["Action"])):
            return False
    elif any(_wildcard(a, check.action, case_sensitive=False) for a in _as_list(statement.get("NotAction", []))):
        return False
    if "Resource" in statement:
        if not any(_wildcard(r, check.resource) for r in _as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(_wildcard(r, check.resource) for r in _as_list(statement["NotResource"])):
            return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            if not _condition_met(operator, key, expected, check.context):
                return False
    return True


def evaluate(documents: Sequence[Mapping[str, Any]], check: Check) -> bool:
    """AWS's evaluation of identity policies: an explicit Deny wins, else some Allow is needed."""
    allowed = False
    for document in documents:
        for statement in _as_list(document.get("Statement", [])):
            if statement_applies(statement, check):
                if statement.get("Effect") == "Deny":
                    return False
                allowed = True
    return allowed


# ---------------------------------------------------------------------------------------------
# What AWS authorizes for a request
# ---------------------------------------------------------------------------------------------


def _json_body(response: Any) -> dict[str, Any]:
    body = response.body
    if isinstance(body, dict):
        return body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if body and body.lstrip().startswith("{"):
        try:
            return json.loads(body)
        except ValueError:
            return {}
    return {}


def _query_params(response: Any) -> dict[str, str]:
    params: dict[str, str] = {}
    for source in (getattr(response, "querystring", {}) or {},):
        for key, value in source.items():
            params[key] = value[0] if isinstance(value, list) and value else value
    body = response.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if isinstance(body, str) and body and not body.lstrip().startswith("{") and "=" in body:
        for key, value in parse_qs(body).items():
            params.setdefault(key, value[0])
    return params


def _tag_context(tags: Any) -> dict[str, Any]:
    context: dict[str, Any] = {}
    if isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, dict) and "Key" in tag:
                context[f"aws:RequestTag/{tag['Key']}"] = tag.get("Value", "")
        context["aws:TagKeys"] = [t.get("Key") for t in tags if isinstance(t, dict)]
    return context


class _Arns:
    def __init__(self, region: str, account: str):
        self.region, self.account = region, account

    def __call__(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"


def _sagemaker(operation: str, params: Mapping[str, Any], arn: _Arns) -> list[Check]:
    kinds = (
        ("TrainingJob", "training-job", "TrainingJobName"),
        ("EndpointConfig", "endpoint-config", "EndpointConfigName"),
        ("Endpoint", "endpoint", "EndpointName"),
        ("Model", "model", "ModelName"),
    )
    action = f"sagemaker:{operation}"
    resource = "*"
    if operation in ("AddTags", "ListTags", "DeleteTags"):
        resource = str(params.get("ResourceArn", "*"))
    elif not operation.startswith("List"):
        for suffix, kind, name_field in kinds:
            if operation.endswith(suffix) and name_field in params:
                resource = arn("sagemaker", f"{kind}/{str(params[name_field]).lower()}")
                break
        if operation == "UpdateEndpoint":
            resource = arn("sagemaker", f"endpoint/{str(params.get('EndpointName', '')).lower()}")
    context = _tag_context(params.get("Tags")) if operation.startswith("Create") else {}
    checks = [Check(action, resource, {**context, **_resource_tag_context(resource, arn)})]
    if operation in ("UpdateEndpoint", "CreateEndpoint") and "EndpointConfigName" in params:
        # AWS authorizes the config an endpoint is created from / updated to as well.
        config = arn("sagemaker", f"endpoint-config/{str(params['EndpointConfigName']).lower()}")
        checks.append(Check(action, config, _resource_tag_context(config, arn)))
    if operation.startswith("Create") and params.get("Tags"):
        # Tags on create: SageMaker authorizes sagemaker:AddTags on the new resource as well
        # (SageMaker developer guide, "Provide permissions for tagging SageMaker AI resources").
        checks.append(Check("sagemaker:AddTags", resource, context))
    if operation == "DeleteEndpoint" and _has_scalable_variant(str(params.get("EndpointName", "")), arn):
        # Application Auto Scaling deregisters the endpoint's scalable variants with the caller's
        # permission; without it the delete is refused (SageMaker developer guide, "Delete
        # endpoints configured for auto scaling").
        checks.append(Check("application-autoscaling:DeregisterScalableTarget", "*"))
    passed = params.get("RoleArn") or params.get("ExecutionRoleArn")
    if passed and operation.startswith("Create"):
        checks.append(Check("iam:PassRole", str(passed), {"iam:PassedToService": "sagemaker.amazonaws.com"}))
    return checks


def _has_scalable_variant(endpoint: str, arn: _Arns) -> bool:
    """Whether a variant of `endpoint` is a scalable target in moto's Application Auto Scaling."""
    from moto.applicationautoscaling.models import applicationautoscaling_backends

    targets = applicationautoscaling_backends[arn.account][arn.region].targets
    return any(
        resource.startswith(f"endpoint/{endpoint}/variant/")
        for by_resource in targets.values()
        for resource in by_resource
    )


def _resource_tag_context(resource: str, arn: _Arns) -> dict[str, Any]:
    """aws:ResourceTag/<k> and sagemaker:ResourceTag/<k> of an existing SageMaker resource."""
    from moto.sagemaker.models import sagemaker_backends

    if resource == "*" or ":sagemaker:" not in resource:
        return {}
    backend = sagemaker_backends[arn.account][arn.region]
    try:
        tags = backend.list_tags(_moto_sagemaker_arn(backend, resource))
    except Exception:  # not created yet (a Create call) or not a taggable kind
        return {}
    context: dict[str, Any] = {}
    # moto keeps a training job's tags as the request's list, once nested: flattened here.
    flat = [t for tag in tags or [] for t in (tag if isinstance(tag, list) else [tag])]
    for tag in flat:
        if isinstance(tag, dict) and tag.get("Key"):
            value = tag.get("Value") or ""
            context[f"aws:ResourceTag/{tag['Key']}"] = context[f"sagemaker:ResourceTag/{tag['Key']}"] = value
    return context


# ARN resource type -> moto's store of that kind (keyed by the name as created).
_MOTO_SAGEMAKER_STORES = {
    "model": "_models",
    "endpoint": "endpoints",
    "endpoint-config": "endpoint_configs",
    "training-job": "training_jobs",
}


def _moto_sagemaker_arn(backend: Any, resource: str) -> str:
    """The ARN moto files a SageMaker resource under. SageMaker names are unique whatever their case
    and AWS writes their ARNs in lower case (what policies match, hence `resource`); moto keys its
    store by the name as created (`MyDog-...`), so the lower-cased ARN finds no resource and no tags."""
    prefix, _, path = resource.rpartition(":")
    kind, _, name = path.partition("/")
    store = getattr(backend, _MOTO_SAGEMAKER_STORES.get(kind, ""), None) or {}
    real = next((key for key in store if key.lower() == name.lower()), name)
    return f"{prefix}:{kind}/{real}"


def _function_arn(name: str, arn: _Arns) -> str:
    name = unquote(name)
    if name.startswith("arn:"):
        return name
    return arn("lambda", f"function:{name}")


class KeyLookup:
    """The customer KMS keys that requests use without naming them (what moto holds; None when
    none, or when the AWS-managed key is used: its key policy lets every principal of the account
    use it through its service)."""

    def bucket(self, bucket: str) -> Optional[str]:
        """The key of a bucket's default encryption (SSE-KMS)."""
        return None

    def object(self, bucket: str, key: str) -> Optional[str]:
        """The key an existing object is encrypted with (the bucket's default for one not found)."""
        return None

    def topic(self, topic_arn: str) -> Optional[str]:
        """The key an SNS topic is encrypted with (KmsMasterKeyId)."""
        return None


def _required(
    service: str, operation: str, response: Any, moto_resource: str, arn: _Arns, keys: KeyLookup
) -> list[Check]:
    prefix = _IAM_PREFIX.get(service, service)
    action = f"{prefix}:{_ACTION_NAMES.get(prefix, {}).get(operation, operation)}"
    if prefix == "s3":
        return _s3(operation, action, response, moto_resource, arn, keys)
    if prefix in ("iam", "sts", "sqs"):
        return [Check(action, moto_resource)]
    params = _json_body(response) or _query_params(response)
    if prefix == "sagemaker":
        if operation in ("InvokeEndpoint", "InvokeEndpointAsync"):
            name = urlparse(response.path).path.rstrip("/").split("/")[-2]
            return [Check(action, arn("sagemaker", f"endpoint/{unquote(name).lower()}"))]
        return _sagemaker(operation, params, arn)
    if prefix == "dynamodb":
        table = params.get("TableName")
        resource = arn("dynamodb", f"table/{table}") if table else "*"
        if table and params.get("IndexName"):
            resource += f"/index/{params['IndexName']}"
        # dynamodb:LeadingKeys: the partition key value of an item request on a table without a sort key.
        key = params.get("Key")
        leading = [next(iter(v.values())) for v in key.values()] if isinstance(key, dict) and len(key) == 1 else []
        return [Check(action, resource, {"dynamodb:LeadingKeys": leading} if leading else {})]
    if prefix == "lambda":
        parts = urlparse(response.path).path.split("/")
        name = parts[parts.index("functions") + 1] if "functions" in parts else "*"
        return [Check(action, _function_arn(name, arn) if name != "*" else "*")]
    if prefix == "states":
        resource = params.get("stateMachineArn") or params.get("executionArn") or "*"
        if "taskToken" in params:
            resource = _token_machine(params["taskToken"], arn) or "*"
        return [Check(action, resource)]
    if prefix == "sns":
        topic = params.get("TopicArn") or params.get("TargetArn") or "*"
        checks = [Check(action, topic)]
        key_arn = keys.topic(topic) if operation in ("Publish", "PublishBatch") else None
        if key_arn:
            # A publish to a topic encrypted with a customer key: SNS makes a data key for the
            # message and reads it back, both as the publisher (SNS developer guide, "Encryption at
            # rest": kms:GenerateDataKey* and kms:Decrypt). For asynchronous inference notices the
            # publisher is SageMaker acting with the model's execution role.
            context = {
                "kms:ViaService": f"sns.{arn.region}.amazonaws.com",
                "kms:EncryptionContext:aws:sns:topicArn": topic,
            }
            checks += [Check("kms:GenerateDataKey", key_arn, context), Check("kms:Decrypt", key_arn, context)]
        return checks
    if prefix == "ssm":
        name = str(params.get("Name", ""))
        return [Check(action, arn("ssm", f"parameter{name if name.startswith('/') else '/' + name}") if name else "*")]
    if prefix == "cloudwatch":
        if "AlarmName" in params:
            return [Check(action, arn("cloudwatch", f"alarm:{params['AlarmName']}"))]
        # Query protocol: AlarmNames.member.N; JSON protocols: one AlarmNames list.
        names = [
            n
            for k, v in params.items()
            if re.fullmatch(r"AlarmNames(\.member\.\d+)?", k)
            for n in (v if isinstance(v, list) else [v])
        ]
        if names:
            return [Check(action, arn("cloudwatch", f"alarm:{n}")) for n in names]
        context = {"cloudwatch:namespace": params["Namespace"]} if "Namespace" in params else {}
        return [Check(action, "*", context)]
    if prefix == "kms":
        key = str(params.get("KeyId", "*"))
        return [Check(action, key if key.startswith("arn:") else arn("kms", f"key/{key}"))]
    if prefix == "events":
        name = params.get("Name") or params.get("Rule")
        return [Check(action, arn("events", f"rule/{name}") if name else "*")]
    return [Check(action, "*")]


def _token_machine(token: str, arn: _Arns) -> Optional[str]:
    """The state machine whose execution issued a task token (SendTask* is authorized on it; AWS reads
    it from the token, also once the execution has ended)."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    backend = stepfunctions_parser_backends[arn.account][arn.region]
    for machine in backend.state_machines:
        for execution in machine.executions:
            worker = getattr(execution, "exec_worker", None)
            pool = getattr(getattr(worker, "env", None), "callback_pool_manager", None)
            if pool is not None and pool.get(token) is not None:
                return execution.state_machine_arn
    return None


def _s3(operation: str, action: str, response: Any, moto_resource: str, arn: _Arns, keys: KeyLookup) -> list[Check]:
    query = {k: (v[0] if isinstance(v, list) else v) for k, v in (response.querystring or {}).items()}
    bucket = moto_resource[len("arn:aws:s3:::") :].split("/", 1)[0]
    if action == "s3:ListBucket":
        context = {k: query[q] for k, q in (("s3:prefix", "prefix"), ("s3:delimiter", "delimiter")) if q in query}
        return [Check(action, f"arn:aws:s3:::{bucket}", context)]
    # moto names a batch delete (POST ?delete) "DeleteObject": each of its keys is authorized in AWS
    if operation == "DeleteObjects" or (response.method == "POST" and "delete" in query):
        keys_deleted = re.findall(
            r"<Key>(.*?)</Key>", response.body.decode() if isinstance(response.body, bytes) else response.body or ""
        )
        return [Check("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{k}") for k in keys_deleted] or [
            Check(action, moto_resource)
        ]
    if "versionId" in query and action in ("s3:GetObject", "s3:DeleteObject"):
        action += "Version"
    checks = [Check(action, moto_resource)]
    object_key = moto_resource[len(f"arn:aws:s3:::{bucket}/") :] if "/" in moto_resource[len("arn:aws:s3:::") :] else ""

    def kms(kms_action: str, key_arn: Optional[str], resource: str) -> None:
        if key_arn:
            checks.append(
                Check(
                    kms_action,
                    key_arn,
                    {
                        "kms:ViaService": f"s3.{arn.region}.amazonaws.com",
                        "kms:EncryptionContext:aws:s3:arn": [
                            f"arn:aws:s3:::{resource.split('/', 1)[0]}",
                            f"arn:aws:s3:::{resource}",
                        ],
                    },
                )
            )

    if action in ("s3:GetObject", "s3:GetObjectVersion"):
        if response.method != "HEAD":  # HeadObject reads metadata only: no data key is decrypted
            kms("kms:Decrypt", keys.object(bucket, object_key), f"{bucket}/{object_key}")
        return checks
    if action != "s3:PutObject":
        return checks
    # moto names every object write PutObject; S3 tells them apart, and so does its KMS use
    # (S3 API reference: PutObject, CopyObject, CreateMultipartUpload, UploadPart, UploadPartCopy).
    copy_source = _header(response, "x-amz-copy-source")
    if copy_source:
        source, _, version = unquote(copy_source).lstrip("/").partition("?versionId=")
        checks.append(Check("s3:GetObjectVersion" if version else "s3:GetObject", f"arn:aws:s3:::{source}"))
        source_bucket, _, source_key = source.partition("/")
        kms("kms:Decrypt", keys.object(source_bucket, source_key), source)
    destination = f"{bucket}/{object_key}"
    if "uploadId" in query and "partNumber" in query:
        # UploadPart / UploadPartCopy: S3 decrypts the upload's data key to encrypt the part.
        kms("kms:Decrypt", keys.bucket(bucket), destination)
    elif "uploadId" not in query:
        # PutObject (a browser form POST too), CopyObject, CreateMultipartUpload: a new data key.
        kms(
            "kms:GenerateDataKey",
            _requested_key(response, arn) or keys.bucket(bucket)
            if _header(response, "x-amz-server-side-encryption") != "AES256"
            else None,
            destination,
        )
    return checks


def _header(response: Any, name: str) -> Optional[str]:
    headers = getattr(response, "headers", None) or {}
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _requested_key(response: Any, arn: _Arns) -> Optional[str]:
    """The customer key a write names itself (x-amz-server-side-encryption-aws-kms-key-id), as an ARN."""
    key = _header(response, "x-amz-server-side-encryption-aws-kms-key-id")
    if not key:
        return None
    return key if key.startswith("arn:") else arn("kms", f"key/{key}")


# ---------------------------------------------------------------------------------------------
# The enforcement
# ---------------------------------------------------------------------------------------------


def _policy_documents(moto_policies: Sequence[Any]) -> list[dict[str, Any]]:
    from moto.iam.access_control import IAMPolicy

    return [IAMPolicy(p)._policy_json for p in moto_policies]


@dataclass
class RoleIdentity:
    logical_id: str
    arn: str
    credentials: dict[str, str]

    def client_kwargs(self) -> dict[str, str]:
        return {
            "aws_access_key_id": self.credentials["AccessKeyId"],
            "aws_secret_access_key": self.credentials["SecretAccessKey"],
            "aws_session_token": self.credentials["SessionToken"],
        }


class IamEnforcement:
    """See the module docstring. Used by `PipelineHarness` (`h.iam`)."""

    def __init__(self, *, region: str, account: str):
        self.region, self.account = region, account
        self.roles: dict[str, RoleIdentity] = {}
        self.denials: list[Denial] = []
        self.checks = 0
        self._expected: list[str] = []
        self._admin: Optional[dict[str, str]] = None
        self._clients: dict[tuple[str, Optional[str], str], Any] = {}
        self._clients_lock = threading.Lock()
        self._stack = ExitStack()
        self._arn = _Arns(region, account)
        self._keys = _MotoKeys(self._arn)

    # ---- set-up: the template's roles into moto ----

    def create_roles(
        self,
        template: Mapping[str, Any],
        resolve: Callable[[Any], Any],
        remove: Optional[Callable[[str, dict[str, Any]], bool]] = None,
    ) -> None:
        """Create each AWS::IAM::Role with its trust policy and the template's policies on it.

        `remove(role_logical_id, statement)` (test-only) drops statements, to plant a missing grant.
        """
        iam = boto3.client("iam", region_name=self.region)
        sts = boto3.client("sts", region_name=self.region)
        resources = template["Resources"]
        role_names: dict[str, str] = {}
        for logical, resource in resources.items():
            if resource["Type"] != "AWS::IAM::Role":
                continue
            props = resource["Properties"]
            iam.create_role(
                RoleName=logical, AssumeRolePolicyDocument=json.dumps(resolve(props["AssumeRolePolicyDocument"]))
            )
            role_names[logical] = logical
            for index, policy in enumerate(props.get("Policies", [])):
                self._put(iam, logical, f"{logical}Inline{index}", resolve(policy["PolicyDocument"]), remove)
        for logical, resource in resources.items():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::IAM::Policy":
                for role in props.get("Roles", []):
                    role_logical = role["Ref"] if isinstance(role, dict) and "Ref" in role else None
                    if role_logical in role_names:
                        self._put(iam, role_logical, logical, resolve(props["PolicyDocument"]), remove)
            elif resource["Type"] == "AWS::IAM::ManagedPolicy":
                for role in props.get("Roles", []):
                    role_logical = role["Ref"] if isinstance(role, dict) and "Ref" in role else None
                    if role_logical in role_names:
                        # Attached managed policies are put inline: moto evaluates both the same way.
                        self._put(iam, role_logical, logical, resolve(props["PolicyDocument"]), remove)
        for logical in role_names:
            credentials = sts.assume_role(
                RoleArn=f"arn:aws:iam::{self.account}:role/{logical}", RoleSessionName=logical[:64]
            )["Credentials"]
            self.roles[logical] = RoleIdentity(
                logical,
                f"arn:aws:iam::{self.account}:role/{logical}",
                {k: credentials[k] for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")},
            )
        iam.create_user(UserName=ADMIN_USER)
        iam.put_user_policy(
            UserName=ADMIN_USER,
            PolicyName="admin",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            ),
        )
        key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        self._admin = {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}

    @staticmethod
    def _put(
        iam: Any,
        role: str,
        name: str,
        document: dict[str, Any],
        remove: Optional[Callable[[str, dict[str, Any]], bool]],
    ) -> None:
        statements = _as_list(document.get("Statement", []))
        if remove is not None:
            statements = [s for s in statements if not remove(role, s)]
        iam.put_role_policy(
            RoleName=role, PolicyName=name, PolicyDocument=json.dumps({**document, "Statement": statements})
        )

    # ---- identities ----

    def role(self, logical_or_arn: str) -> RoleIdentity:
        name = logical_or_arn.rsplit("/", 1)[-1]
        return self.roles[name]

    @contextmanager
    def acting_as(self, role: Optional[str]) -> Iterator[None]:
        """Clients created on this thread inside the block get `role`'s credentials (None: admin)."""
        previous = getattr(_IDENTITY, "role", None)
        _IDENTITY.role = role
        try:
            yield
        finally:
            _IDENTITY.role = previous

    @property
    def has_admin(self) -> bool:
        """Whether create_roles has made the administrator (whose client `client()` gives)."""
        return self._admin is not None

    def client(self, service: str, role: Optional[str] = None, config: Any = None) -> Any:
        """A boto3 client signed as `role` (logical id or ARN), or as the administrator.

        One client per (service, role, region, config) for this enforcement's life: creating a
        botocore client costs tens of milliseconds, and the harness and the Step Functions tasks
        ask for the same ones hundreds of times a test. Clients are thread-safe; what they sign
        with is fixed here, not by the thread that later uses them.
        """
        assert role or self._admin is not None, "harness: no administrator before create_roles"
        identity = self.role(role) if role else None
        key = (service, identity.logical_id if identity else None, repr(config) if config is not None else "")
        with self._clients_lock:
            if key not in self._clients:
                credentials = identity.client_kwargs() if identity else dict(self._admin)
                self._clients[key] = boto3.client(service, region_name=self.region, config=config, **credentials)
            return self._clients[key]

    def authorize_role(self, role_arn: str, checks: Sequence[Check]) -> list[Denial]:
        """What a service authorizes as a role without a request of the role's own (Step Functions
        making sure the managed EventBridge rule of a `.sync` task exists, with the machine's role):
        evaluated on the role's policies in moto; each refusal recorded as any other, and returned."""
        from moto.iam.access_control import create_access_key

        credentials = self.role(role_arn).credentials
        access_key = create_access_key(
            account_id=self.account,
            partition="aws",
            access_key_id=credentials["AccessKeyId"],
            headers={"X-Amz-Security-Token": credentials["SessionToken"]},
        )
        documents = _policy_documents(access_key.collect_policies())
        refused = []
        for check in checks:
            self.checks += 1
            if not evaluate(documents, check):
                refused.append(Denial(access_key.arn, check.action, check.resource))
        self.denials.extend(refused)
        return refused

    def expect_denials(self, *fragments: str) -> None:
        """The test expects refusals whose text contains each fragment (consumed at exit)."""
        self._expected.extend(fragments)

    def unexpected_denials(self) -> list[Denial]:
        return [d for d in self.denials if not any(f in str(d) for f in self._expected)]

    # ---- switching it on ----

    def __enter__(self) -> "IamEnforcement":
        from botocore.credentials import Credentials
        from botocore.session import Session
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin

        enforcement = self

        def get_credentials(session: Any) -> Any:
            role = getattr(_IDENTITY, "role", None)
            if role:
                c = enforcement.role(role).credentials
                return Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])
            assert enforcement._admin is not None
            return Credentials(enforcement._admin["aws_access_key_id"], enforcement._admin["aws_secret_access_key"])

        self._stack.enter_context(mock.patch.object(Session, "get_credentials", get_credentials))
        self._patch_step_functions_clients()

        def authorize(response: Any, iam_request_cls: type, resource: str = "*") -> None:
            enforcement._authorize(response, iam_request_cls, resource)

        self._stack.enter_context(
            mock.patch.object(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", authorize)
        )
        previous = (settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count)
        settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
        ActionAuthenticatorMixin.request_count = 0

        def restore() -> None:
            settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = previous

        self._stack.callback(restore)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()

    def _patch_step_functions_clients(self) -> None:
        """moto's interpreter signs every task's call with a dummy key; AWS uses the machine's role."""
        import sys

        from botocore.config import Config
        from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
        from moto.stepfunctions.parser.asl.utils import boto_client as boto_client_module

        original = boto_client_module.boto_client_for
        enforcement = self
        # moto's own task client configuration (boto_client.py), signed with the machine's role.
        task_config = Config(
            parameter_validation=False,
            retries={"max_attempts": 0, "total_max_attempts": 1},
            connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
        )

        def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            role_arn = getattr(state_credentials, "role_arn", None)
            if not role_arn:
                raise AssertionError(f"harness: a Step Functions task on {service} has no role to run with")
            assert region == enforcement.region, f"harness: a task in {region}, the harness runs {enforcement.region}"
            return enforcement.client(service, role_arn, config=task_config)

        for name, module in list(sys.modules.items()):
            if name.startswith("moto.stepfunctions") and getattr(module, "boto_client_for", None) is original:
                self._stack.enter_context(mock.patch.object(module, "boto_client_for", boto_client_for))

    # ---- the check ----

    def _authorize(self, response: Any, iam_request_cls: type, resource: str) -> None:
        from moto.core.authorization import ActionAuthenticatorMixin
        from moto.iam.access_control import IAMRequest

        if response.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
            return
        parsed_url = urlparse(response.uri)
        path = response.raw_path + (f"?{parsed_url.query}" if parsed_url.query else "")
        if "Authorization" not in response.headers:
            self._authorize_presigned(response, resource)
            return
        # moto authenticates: access key (and session token) -> IAM user or assumed role, its
        # policies. Its signature recomputation is not used: it disagrees with botocore's for some
        # REST requests with a query (API Gateway's GetApiKey?includeValue=true), which AWS accepts.
        iam_request = iam_request_cls(
            account_id=response.current_account,
            method=response.method,
            path=path,
            data=response.data,
            body=response.raw_body,
            headers=response.headers,
            action=response._get_action(),
        )
        service, operation = iam_request._action.split(":", 1)
        if iam_request._action == "sts:GetCallerIdentity":
            return
        self._check(
            iam_request._access_key,
            service,
            operation,
            response,
            resource,
            refuse=lambda denial: self._refuse(iam_request, iam_request_cls is IAMRequest, denial),
        )

    def _check(
        self,
        access_key: Any,
        service: str,
        operation: str,
        response: Any,
        resource: str,
        refuse: Callable[[Denial], None],
    ) -> None:
        documents = _policy_documents(access_key.collect_policies())
        self.checks += 1
        for check in _required(service, operation, response, resource, self._arn, self._keys):
            if not evaluate(documents, check) or (
                check.action == "sts:AssumeRole" and not self._trusted(access_key, check)
            ):
                denial = Denial(access_key.arn, check.action, check.resource)
                self.denials.append(denial)
                refuse(denial)

    def _trusted(self, access_key: Any, check: Check) -> bool:
        """AssumeRole also needs the role's trust policy to name the caller (its role, or the account)."""
        from moto.iam.models import iam_backends

        try:
            role = iam_backends[self.account]["aws"].get_role_by_arn(check.resource)
        except Exception:
            return False
        caller = access_key.arn
        if ":assumed-role/" in caller:
            caller = f"arn:aws:iam::{self.account}:role/{caller.split(':assumed-role/')[1].split('/')[0]}"
        trust = json.loads(role.assume_role_policy_document)
        for statement in _as_list(trust.get("Statement", [])):
            principals = _as_list((statement.get("Principal") or {}).get("AWS", []))
            if statement.get("Effect") == "Allow" and (
                caller in principals or f"arn:aws:iam::{self.account}:root" in principals
            ):
                return True
        return False

    @staticmethod
    def _refuse(iam_request: Any, generic: bool, denial: Denial) -> None:
        if generic:
            headers = {k.lower(): v for k, v in (getattr(iam_request, "_headers", None) or {}).items()}
            query = "x-amz-target" not in headers and headers.get("content-type", "").startswith(
                "application/x-www-form-urlencoded"
            )
            raise _access_denied(denial.principal, f"{denial.action} on {denial.resource}", query_protocol=query)
        iam_request._raise_access_denied()

    def _authorize_presigned(self, response: Any, resource: str) -> None:
        """A presigned S3 URL: authorized as the principal that signed it, until it expires.

        The signature itself is not recomputed (moto's checker reads only the Authorization
        header); the signer's identity, its policies and the expiry are checked.
        """
        from datetime import datetime, timedelta, timezone

        from moto.s3.exceptions import S3AccessDeniedError

        query = {k: (v[0] if isinstance(v, list) else v) for k, v in (response.querystring or {}).items()}
        form = getattr(response, "form_data", None) or {}
        if response.method == "POST" and "policy" in {k.lower() for k in form}:
            # The form as the browser sent it (moto adds its own entries to `querystring`).
            self._authorize_post_policy(response, resource, {k.lower(): v for k, v in form.items()})
            return
        credential = query.get("X-Amz-Credential")
        if not credential:
            raise S3AccessDeniedError()  # anonymous: the bucket is private
        signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        if datetime.now(timezone.utc) > signed_at + timedelta(seconds=int(query.get("X-Amz-Expires", "0"))):
            self.denials.append(Denial(credential.split("/")[0], "s3:GetObject (presigned URL expired)", resource))
            raise S3AccessDeniedError()
        access_key = self._signer(
            response, credential.split("/")[0], query.get("X-Amz-Security-Token"), "s3:GetObject", resource
        )

        def refuse(denial: Denial) -> None:
            raise S3AccessDeniedError()

        self._check(access_key, "s3", response.data.get("Action", "GetObject"), response, resource, refuse)

    def _signer(self, response: Any, access_key_id: str, token: Optional[str], action: str, resource: str) -> Any:
        """The principal whose credentials signed a presigned request; refused once they expired."""
        from datetime import datetime, timezone

        from moto.iam.access_control import create_access_key
        from moto.s3.exceptions import S3AccessDeniedError
        from moto.sts.models import sts_backends

        for session in sts_backends[self.account]["aws"].assumed_roles:
            if session.access_key_id == access_key_id and datetime.now(timezone.utc) > _utc(session.expiration):
                # A presigned request ends with the credentials that signed it, whatever its own expiry.
                self.denials.append(
                    Denial(session.arn, f"{action} (presigned request's credentials expired)", resource)
                )
                raise S3AccessDeniedError()
        headers = dict(response.headers)
        if token:
            headers["X-Amz-Security-Token"] = token
        return create_access_key(account_id=self.account, partition="aws", access_key_id=access_key_id, headers=headers)

    def _authorize_post_policy(self, response: Any, resource: str, form: Mapping[str, str]) -> None:
        """A browser-form POST to a bucket (a presigned POST): authorized as AWS authorizes it.

        The form carries a base64 POST policy and its SigV4 signature (x-amz-credential, x-amz-date,
        x-amz-signature, x-amz-security-token). AWS verifies the signature with the signer's secret
        key, refuses the upload once the policy's expiration has passed or when a form field breaks
        (or is not covered by) a condition, and then authorizes s3:PutObject on the form's key as
        the signer, with the signer's policies, as for any other call of theirs.
        """
        import base64
        import hashlib
        import hmac
        from datetime import datetime, timezone

        from moto.s3.exceptions import S3AccessDeniedError

        bucket = resource[len("arn:aws:s3:::") :].split("/", 1)[0]
        key = form.get("key", "")
        object_arn = f"arn:aws:s3:::{bucket}/{key}"
        credential = form.get("x-amz-credential", "")
        access_key_id = credential.split("/")[0]

        def refuse(reason: str) -> None:
            self.denials.append(
                Denial(access_key_id or "anonymous", f"s3:PutObject (POST policy: {reason})", object_arn)
            )
            raise S3AccessDeniedError()

        if form.get("x-amz-algorithm") != "AWS4-HMAC-SHA256" or len(credential.split("/")) != 5:
            refuse("not signed with SigV4")
        access_key = self._signer(response, access_key_id, form.get("x-amz-security-token"), "s3:PutObject", object_arn)
        secret = getattr(access_key, "_secret_access_key", None)
        if secret is None:
            refuse("unknown access key")
        _, date, region, service, terminal = credential.split("/")
        signing_key = ("AWS4" + secret).encode()
        for part in (date, region, service, terminal):
            signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(signing_key, form["policy"].encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, form.get("x-amz-signature", "")):
            refuse("signature does not match")
        try:
            policy = json.loads(base64.b64decode(form["policy"]))
            expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError):
            refuse("not a POST policy document")
        if datetime.now(timezone.utc) > expiration:
            refuse("expired")
        fields = {**form, "bucket": bucket}
        covered = {"bucket"}
        size = len(response.raw_body or b"")
        for condition in policy.get("conditions", []):
            if isinstance(condition, dict):
                ((name, value),) = condition.items()
                operator, name = "eq", name.lower()
            elif condition[0] == "content-length-range":
                if not int(condition[1]) <= size <= int(condition[2]):
                    refuse(f"content length {size} outside {condition[1]}-{condition[2]}")
                continue
            else:
                operator, name, value = condition[0], condition[1].lstrip("$").lower(), condition[2]
            covered.add(name)
            actual = fields.get(name, "")
            if not (actual == value if operator == "eq" else operator == "starts-with" and actual.startswith(value)):
                refuse(f"{name}={actual!r} does not satisfy {condition}")
        exempt = {"x-amz-signature", "file", "policy"}
        extra = sorted(n for n in form if n not in covered | exempt and not n.startswith("x-ignore-"))
        if extra:
            refuse(f"extra input fields {extra}")

        def refuse_check(denial: Denial) -> None:
            raise S3AccessDeniedError()

        self._check(access_key, "s3", "PutObject", response, object_arn, refuse_check)


class _MotoKeys(KeyLookup):
    """`KeyLookup` over moto's S3 and SNS backends."""

    def __init__(self, arn: _Arns):
        self._arn = arn

    def _key_arn(self, key: Optional[str]) -> Optional[str]:
        if not key or key.startswith("alias/aws/") or ":alias/aws/" in key:
            return None  # none, or an AWS-managed key (aws/s3, aws/sns): its key policy lets the account use it
        return key if key.startswith("arn:") else self._arn("kms", f"key/{key}")

    def bucket(self, bucket: str) -> Optional[str]:
        from moto.s3.models import s3_backends

        found = s3_backends[self._arn.account]["aws"].buckets.get(bucket)
        rules = ((found.encryption or {}).get("Rule") if found is not None else None) or {}
        default = (rules[0] if isinstance(rules, list) else rules).get("ApplyServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm") not in ("aws:kms", "aws:kms:dsse"):
            return None
        return self._key_arn(default.get("KMSMasterKeyID"))

    def object(self, bucket: str, key: str) -> Optional[str]:
        from moto.s3.models import s3_backends

        found = s3_backends[self._arn.account]["aws"].buckets.get(bucket)
        stored = found.keys.get(key) if found is not None and key else None
        if stored is None:
            return self.bucket(bucket)  # not there (AWS answers NoSuchKey after authorizing): its bucket's default
        if getattr(stored, "encryption", None) not in ("aws:kms", "aws:kms:dsse"):
            return None
        return self._key_arn(getattr(stored, "kms_key_id", None))

    def topic(self, topic_arn: str) -> Optional[str]:
        from moto.sns.models import sns_backends

        found = sns_backends[self._arn.account][self._arn.region].topics.get(topic_arn)
        return self._key_arn(found.kms_master_key_id if found is not None else None)


def _utc(value: Any) -> Any:
    from datetime import timezone

    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _access_denied(user_arn: str, action: str, *, query_protocol: bool) -> Exception:
    """moto's AccessDenied, with the request id AWS puts on every error response.

    moto's generic error has none; Step Functions' SNS integration (and AWS SDKs' error reports)
    read it, so a refused Publish ended the run in an uncatchable States.Runtime (KeyError
    'RequestId') where AWS gives a catchable SNS error. Query protocol (SNS, IAM, STS, CloudWatch):
    botocore reads it from <RequestId> in the body; the JSON protocols from the header (the body
    is left as it was, so that a message quoting it stays the same from one refusal to the next).
    """
    from moto.core.exceptions import AccessDeniedError

    error = AccessDeniedError(user_arn=user_arn, action=action)
    request_id = str(uuid.uuid4())
    if query_protocol:
        error.description = error.description.replace(
            "</ErrorResponse>", f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    headers = error.get_headers()
    error.get_headers = lambda *args, **kwargs: [*headers, ("x-amzn-RequestId", request_id)]  # type: ignore[method-assign]
    return error


def statements_matching(*actions: str, resource_contains: str = "") -> Callable[[str, dict[str, Any]], bool]:
    """A `remove` predicate for `create_roles`: statements granting any of `actions` whose (resolved)
    Resource mentions `resource_contains` (test-only)."""

    def remove(role: str, statement: dict[str, Any]) -> bool:
        granted = [a.lower() for a in _as_list(statement.get("Action", []))]
        resources = json.dumps(statement.get("Resource", ""))
        return any(a.lower() in granted for a in actions) and resource_contains in resources

    return remove
