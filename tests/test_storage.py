"""The data bucket as synthesized: secure defaults when created, hands-off when taken over."""

import pytest
from aws_cdk.assertions import Match, Template

from tests.conftest import synth_stack


@pytest.fixture(scope="module")
def created(created_stack):
    return Template.from_stack(created_stack)


@pytest.fixture(scope="module")
def imported(imported_stack):
    return Template.from_stack(imported_stack)


def test_created_bucket_is_private_encrypted_and_versioned(created):
    created.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
        },
    )


def test_created_bucket_is_retained_on_destroy(created):
    created.has_resource("AWS::S3::Bucket", {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"})
    # No auto-delete custom resource that could empty the bucket.
    created.resource_count_is("Custom::S3AutoDeleteObjects", 0)


def test_bucket_policy_denies_plain_http_and_old_tls(created):
    created.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Principal": {"AWS": "*"},
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ),
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Condition": {"NumericLessThan": {"s3:TlsVersion": 1.2}},
                            }
                        ),
                    ]
                )
            }
        },
    )


def test_lifecycle_rules(created):
    created.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Id": "abort-incomplete-uploads",
                                "Status": "Enabled",
                                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
                            }
                        ),
                        Match.object_like(
                            {"Id": "expire-noncurrent-versions", "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}
                        ),
                        Match.object_like(
                            {"Id": "expire-abandoned-staging-uploads", "Prefix": "uploads/", "ExpirationInDays": 7}
                        ),
                        Match.object_like(
                            {"Id": "expire-generated-images", "Prefix": "generated/", "ExpirationInDays": 30}
                        ),
                    ]
                )
            }
        },
    )


def test_the_cli_and_the_page_stage_uploads_where_the_bucket_expires_abandoned_ones():
    from dreambooth_shared.contract import DATASETS_PREFIX, UPLOADS_PREFIX
    from scripts.cli.dataset_upload import rules, staging_prefix

    # The one definition (dreambooth_shared/dataset_rules.py) the CLI and the API's dataset routes use
    assert rules().UPLOADS_PREFIX == UPLOADS_PREFIX and not UPLOADS_PREFIX.startswith(DATASETS_PREFIX)
    assert staging_prefix("dog", "t1").startswith(UPLOADS_PREFIX)


def test_generated_expiry_is_configurable_and_can_be_off():
    template = Template.from_stack(synth_stack({"generatedExpiryDays": "0", "noncurrentVersionExpiryDays": 90}))
    rules = template.find_resources("AWS::S3::Bucket")
    (bucket,) = rules.values()
    ids = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert "expire-generated-images" not in ids
    assert ids["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90


def test_eventbridge_notifications_on_for_created_bucket(created):
    created.has_resource_properties(
        "Custom::S3BucketNotifications",
        {"NotificationConfiguration": {"EventBridgeConfiguration": {}}, "Managed": True},
    )


def test_created_bucket_carries_the_project_tag(created):
    created.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "Tags": Match.array_with(
                [
                    {"Key": "dreambooth-pipeline:role", "Value": "data-bucket"},
                    {"Key": "dreambooth-pipeline:stack", "Value": "DreamBoothPipeline"},
                ]
            )
        },
    )


def test_access_logs_go_to_the_configured_log_bucket():
    template = Template.from_stack(synth_stack({"accessLogBucketName": "my-log-bucket"}))
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {"LoggingConfiguration": {"DestinationBucketName": "my-log-bucket", "LogFilePrefix": "dreambooth-pipeline/"}},
    )


def test_imported_bucket_is_neither_created_nor_reconfigured(imported):
    imported.resource_count_is("AWS::S3::Bucket", 0)
    imported.resource_count_is("AWS::S3::BucketPolicy", 0)


def test_imported_bucket_gets_eventbridge_merged_not_replaced(imported):
    imported.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "BucketName": "existing-photos-bucket",
            "NotificationConfiguration": {"EventBridgeConfiguration": {}},
            "Managed": False,
        },
    )


@pytest.mark.parametrize(
    "stack_fixture, expected", [("created_stack", None), ("imported_stack", "existing-photos-bucket")]
)
def test_downstream_sees_the_same_interface(request, stack_fixture, expected):
    stack = request.getfixturevalue(stack_fixture)
    template = Template.from_stack(stack)
    output = template.find_outputs("BucketName")["BucketName"]["Value"]
    if expected:
        assert output == expected
    else:
        assert output == {"Ref": stack.get_logical_id(stack.data.bucket.node.default_child)}
    assert stack.data.created is (expected is None)
