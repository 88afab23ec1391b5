"""Typed configuration: defaults, string values from `-c`, and errors naming the key."""

import pytest

from stacks.config import AppConfig, BucketDecision, ConfigError, bucket_decision_key


def load(context, environ=None):
    return AppConfig.load(context.get, environ or {})


def test_defaults_when_context_is_empty():
    config = load({})
    assert config.stack_name == "DreamBoothPipeline"
    assert config.training.instance_type == "ml.g4dn.2xlarge"
    assert config.serving.instance_type == "ml.g4dn.2xlarge"
    assert config.storage.bucket_name is None
    assert config.storage.generated_expiry_days == 30
    assert config.notifications.email is None
    assert config.bucket_source == "created" and config.existing_bucket_name is None


def test_command_line_strings_are_parsed():
    config = load({"bucketQuotaMargin": "5", "generatedExpiryDays": "0", "notificationEmail": "me@example.com"})
    assert config.storage.bucket_quota_margin == 5
    assert config.storage.generated_expiry_days == 0
    assert config.notifications.email == "me@example.com"


def test_environment_from_cdk_variables():
    config = load({}, {"CDK_DEFAULT_ACCOUNT": "111111111111", "CDK_DEFAULT_REGION": "eu-west-1",
                       "CDK_DEPLOY_REGION": "us-west-2"})
    assert (config.env.account, config.env.region) == ("111111111111", "us-west-2")


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("trainingInstanceType", "ml.m5.large", "GPU instance type"),
        ("endpointInstanceType", "g4dn.xlarge", "GPU instance type"),
        ("bucketQuotaMargin", "-1", "whole number from 0"),
        ("generatedExpiryDays", "thirty", "whole number"),
        ("noncurrentVersionExpiryDays", True, "whole number"),
        ("bucketName", "Not_A_Bucket", "S3 bucket name"),
        ("notificationEmail", "not-an-address", "e-mail address"),
        ("stackName", "1-bad", "stack name"),
        ("bucketKmsKeyArn", "alias/photos", "KMS key ARN"),
        ("bucketKmsKeyArn", "arn:aws:kms:us-east-1:123456789012:alias/photos", "KMS key ARN"),
        ("imageUrlExpirySeconds", "43200", "3600"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(key, value, fragment):
    with pytest.raises(ConfigError) as raised:
        load({key: value})
    assert f"'{key}'" in str(raised.value) and fragment in str(raised.value)


def test_a_bucket_key_arn_is_kept():
    key = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    assert load({"bucketName": "photos", "bucketKmsKeyArn": key}).storage.bucket_kms_key_arn == key


def test_configured_bucket_wins_over_recorded_decision():
    env = {"CDK_DEFAULT_ACCOUNT": "111111111111", "CDK_DEFAULT_REGION": "us-east-1"}
    key = bucket_decision_key("DreamBoothPipeline", "111111111111", "us-east-1")
    reuse = BucketDecision(action="reuse", reason="r", bucket_name="old-bucket").to_context()
    assert load({key: reuse}, env).existing_bucket_name == "old-bucket"
    assert load({key: reuse}, env).bucket_source == "reused"
    both = load({key: reuse, "bucketName": "mine"}, env)
    assert (both.existing_bucket_name, both.bucket_source) == ("mine", "configured")


def test_recorded_decision_only_applies_to_its_account_and_region():
    key = bucket_decision_key("DreamBoothPipeline", "111111111111", "us-east-1")
    reuse = {"action": "reuse", "bucketName": "old-bucket", "reason": "r"}
    other = load({key: reuse}, {"CDK_DEFAULT_ACCOUNT": "222222222222", "CDK_DEFAULT_REGION": "us-east-1"})
    offline = load({key: reuse}, {})
    assert other.existing_bucket_name is None and offline.existing_bucket_name is None


def test_malformed_recorded_decision_is_an_error():
    env = {"CDK_DEFAULT_ACCOUNT": "111111111111", "CDK_DEFAULT_REGION": "us-east-1"}
    key = bucket_decision_key("DreamBoothPipeline", "111111111111", "us-east-1")
    with pytest.raises(ConfigError, match="dreambooth-bucket"):
        load({key: {"action": "reuse"}}, env)
