"""The data bucket: datasets/ in, models/ and generated/ out."""

from __future__ import annotations

import fnmatch
from typing import Optional

from aws_cdk import Acknowledgment, Aws, Duration, RemovalPolicy, Stack, Tags, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from dreambooth_shared.contract import GENERATED_PREFIX, INFERENCE_PREFIX, UPLOADS_PREFIX
from stacks.config import PROJECT_TAG_KEY, PROJECT_TAG_VALUE, STACK_TAG_KEY, StorageConfig

# The CLI and the web page stage an upload under uploads/ (outside datasets/, so nothing starts) before
# copying it into place; what is left there is abandoned after this long.
ABANDONED_UPLOAD_DAYS = 7
# Asynchronous inference objects: the images are copied out under generated/ by the result handler;
# these expire after a day.
INFERENCE_EXPIRY_DAYS = 1
BROWSER_UPLOAD_CORS_MAX_AGE_S = 600

# Fixed construct id under which aws-cdk-lib puts its bucket-notifications handler in a stack.
NOTIFICATIONS_HANDLER_ID = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"


class DataBucket(Construct):
    """One S3 bucket for the whole pipeline, created or taken over from an existing one.

    Props:
      config: lifecycle and logging settings (see `StorageConfig` for defaults).
      existing_bucket_name: when given, that bucket is used as it is: it is never created,
        deleted or reconfigured; only EventBridge notifications are switched on, merged into
        whatever notification configuration it already has. Default: None (create a bucket).

    Attributes:
      bucket: the bucket, the same interface whether it was created or imported.
      created: whether this construct owns the bucket.
      key_arn: the customer key of a reused SSE-KMS bucket (`bucketKmsKeyArn`), or None.

    Methods:
      allow_browser_uploads(origin): a CORS rule for the web page's presigned photo uploads.
      grant_key_to_object_users(scope): that key, to every role under `scope` that reads or writes
        the bucket's objects (called by the stack once every grant is made).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StorageConfig,
        existing_bucket_name: Optional[str] = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.created = existing_bucket_name is None
        self.key_arn = config.bucket_kms_key_arn
        if existing_bucket_name is not None:
            self.bucket: s3.IBucket = s3.Bucket.from_bucket_name(self, "Bucket", existing_bucket_name)
            # Writes Managed=false into CDK's notification custom resource, which merges the
            # EventBridge switch into the bucket's existing configuration instead of replacing it.
            self.bucket.enable_event_bridge_notification()
            self._annotate_notifications_handler()
            return

        bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            event_bridge_enabled=True,
            lifecycle_rules=self._lifecycle_rules(config),
            server_access_logs_bucket=(
                s3.Bucket.from_bucket_name(self, "AccessLogs", config.access_log_bucket_name)
                if config.access_log_bucket_name
                else None
            ),
            server_access_logs_prefix="dreambooth-pipeline/" if config.access_log_bucket_name else None,
            # User photos and trained models outlive the stack: `cdk destroy` leaves the bucket.
            removal_policy=RemovalPolicy.RETAIN,
            auto_delete_objects=False,
        )
        Tags.of(bucket).add(PROJECT_TAG_KEY, PROJECT_TAG_VALUE)
        Tags.of(bucket).add(STACK_TAG_KEY, Stack.of(self).stack_name)
        if not config.access_log_bucket_name:
            Validations.of(bucket).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-S1",
                    reason=(
                        "Server access logs need a second bucket, and this project is often deployed "
                        "into accounts at their bucket quota. Set accessLogBucketName to an existing "
                        "log bucket to turn them on; CloudTrail data events are the other option."
                    ),
                )
            )
        self.bucket = bucket
        self._annotate_notifications_handler()

    def allow_browser_uploads(self, origin: str) -> None:
        """Let a web page served from `origin` POST photos to the bucket with presigned POSTs (the
        presigned policy still decides the key, size and type) and GET the images its presigned links
        name (to zip them). A bucket this construct does not own is left as it is."""
        if not self.created:
            return
        assert isinstance(self.bucket, s3.Bucket)
        self.bucket.add_cors_rule(
            allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.POST],
            allowed_origins=[origin],
            allowed_headers=["*"],
            max_age=BROWSER_UPLOAD_CORS_MAX_AGE_S,
        )

    def grant_key_to_object_users(self, scope: Construct) -> None:
        """With a customer key (`StorageConfig.bucket_kms_key_arn`, a reused SSE-KMS bucket): every
        policy under `scope` that lets its principals read or write objects of the bucket gets, in
        the same document, what S3 then needs of that key (`bucket_key_statement`): kms:Decrypt where
        s3:GetObject is allowed, kms:GenerateDataKey where s3:PutObject is. Without one, nothing.

        Derived from the grants themselves (CDK's grant_read / grant_put, `grant_prefix_read`,
        hand-written statements alike), so no reader or writer of the bucket can be left without its
        key. Call it once every grant is made; tests/test_least_privilege.py checks every
        synthesized role against it.
        """
        if not self.key_arn:
            return
        objects = self.bucket.arn_for_objects("")
        for policy in scope.node.find_all():
            if not isinstance(policy, (iam.Policy, iam.ManagedPolicy)):
                continue
            reads = writes = False
            for statement in policy.document.to_json().get("Statement", []):
                if statement.get("Effect") != "Allow" or not any(
                    str(r).startswith(objects) for r in _as_list(statement.get("Resource"))
                ):
                    continue
                actions = [str(a).lower() for a in _as_list(statement.get("Action"))]
                reads = reads or any(fnmatch.fnmatchcase("s3:getobject", a) for a in actions)
                writes = writes or any(fnmatch.fnmatchcase("s3:putobject", a) for a in actions)
            if reads or writes:
                policy.document.add_statements(bucket_key_statement(self.key_arn, reads=reads, writes=writes))

    def _annotate_notifications_handler(self) -> None:
        # aws-cdk-lib adds one Lambda per stack that writes the bucket's notification
        # configuration during deployment; its role is generated by CDK, not by this project.
        handler = Stack.of(self).node.try_find_child(NOTIFICATIONS_HANDLER_ID)
        if handler is None:
            return
        Validations.of(handler).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                reason=(
                    "Role of aws-cdk-lib's BucketNotifications handler, which runs only during "
                    "deployment; the managed policy grants it nothing beyond writing its own logs."
                ),
            )
        )
        # cfn-lint W3005 flags a DependsOn that CDK's generated handler repeats next to a GetAtt;
        # harmless, and in code this project does not write: silenced for this resource only.
        function = handler.node.find_child("Resource")
        function.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3005"]}})

    @staticmethod
    def _lifecycle_rules(config: StorageConfig) -> list[s3.LifecycleRule]:
        rules = [
            s3.LifecycleRule(
                id="abort-incomplete-uploads",
                abort_incomplete_multipart_upload_after=Duration.days(config.abort_multipart_days),
            ),
            s3.LifecycleRule(
                id="expire-noncurrent-versions",
                noncurrent_version_expiration=Duration.days(config.noncurrent_version_expiry_days),
                expired_object_delete_marker=True,
            ),
            # Staging objects an interrupted `dreambooth upload` left behind (it deletes its own on success).
            s3.LifecycleRule(
                id="expire-abandoned-staging-uploads",
                prefix=UPLOADS_PREFIX,
                expiration=Duration.days(ABANDONED_UPLOAD_DAYS),
            ),
            s3.LifecycleRule(
                id="expire-inference-exchange",
                prefix=INFERENCE_PREFIX,
                expiration=Duration.days(INFERENCE_EXPIRY_DAYS),
            ),
        ]
        if config.generated_expiry_days:
            rules.append(
                s3.LifecycleRule(
                    id="expire-generated-images",
                    prefix=GENERATED_PREFIX,
                    expiration=Duration.days(config.generated_expiry_days),
                )
            )
        return rules


def grant_prefix_read(bucket: s3.IBucket, grantee: iam.IGrantable, prefix: str, *, listing: bool = True) -> None:
    """Read the objects under `prefix` and, with `listing`, list that prefix only.

    Narrower than `bucket.grant_read(grantee, prefix + "*")`, which also lists the whole bucket
    and reads bucket settings: s3:GetObject on `<prefix>*`, and s3:ListBucket held to
    `<prefix>*` by an `s3:prefix` condition (SageMaker lists an S3Prefix channel or model
    before reading it).
    """
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{prefix}*")])
    )
    if listing:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            )
        )


def bucket_key_statement(key_arn: str, *, reads: bool, writes: bool) -> iam.PolicyStatement:
    """What a principal needs on the customer key of an SSE-KMS bucket, and only through S3:
    kms:Decrypt to read (and for each part of a multipart upload), kms:GenerateDataKey to write."""
    actions = (["kms:Decrypt"] if reads else []) + (["kms:GenerateDataKey"] if writes else [])
    return iam.PolicyStatement(
        actions=actions,
        resources=[key_arn],
        conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
    )


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]
