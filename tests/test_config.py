"""Typed configuration: defaults, string values from `-c`, and errors naming the key."""

import json

import pytest

from stacks.config import JUMPSTART_LOCK_FILE as COMMITTED_LOCK
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
    config = load(
        {}, {"CDK_DEFAULT_ACCOUNT": "111111111111", "CDK_DEFAULT_REGION": "eu-west-1", "CDK_DEPLOY_REGION": "us-west-2"}
    )
    assert (config.env.account, config.env.region) == ("111111111111", "us-west-2")


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("trainingInstanceType", "ml.m5.large", "GPU instance type"),
        ("endpointInstanceType", "g4dn.xlarge", "GPU instance type"),
        # GPU families with sizes SageMaker does not have (botocore's enums)
        ("trainingInstanceType", "ml.p3.xlarge", "SageMaker does not offer it (TrainingInstanceType"),
        ("trainingInstanceType", "ml.g5.3xlarge", "g5 sizes it offers: ml.g5.xlarge, ml.g5.2xlarge"),
        ("endpointInstanceType", "ml.p3.xlarge", "(ProductionVariantInstanceType"),
        ("endpointInstanceType", "ml.g5.3xlarge", "SageMaker does not offer it"),
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


@pytest.mark.parametrize("key", ["trainingInstanceType", "endpointInstanceType"])
@pytest.mark.parametrize("value", ["ml.g4dn.2xlarge", "ml.g5.2xlarge", "ml.p3.2xlarge", "ml.p4d.24xlarge"])
def test_gpu_types_sagemaker_offers_are_accepted(key, value):
    config = load({key: value})
    assert value in (config.training.instance_type, config.serving.instance_type)


@pytest.mark.parametrize("key", ["trainingInstanceType", "endpointInstanceType"])
@pytest.mark.parametrize(
    "value, gpu",
    [
        ("ml.g6.xlarge", "sm_89"),
        ("ml.g6e.2xlarge", "sm_89"),
        ("ml.p5.48xlarge", "sm_90"),
        ("ml.p5en.48xlarge", "sm_90"),
        ("ml.p6-b200.48xlarge", "Blackwell"),
    ],
)
def test_families_newer_than_the_pinned_cuda_are_refused_with_what_to_choose(key, value, gpu):
    """The pinned images are CUDA 11.3 (py38-cu113): it predates Ada and Hopper GPUs. SageMaker offers these
    types (botocore's enums list them), so only this rule stops them at synth."""
    from stacks.config import sagemaker_instance_types

    shape = "TrainingInstanceType" if key == "trainingInstanceType" else "ProductionVariantInstanceType"
    assert value in sagemaker_instance_types(shape)
    with pytest.raises(ConfigError) as raised:
        load({key: value})
    message = str(raised.value)
    assert f"'{key}'" in message and "CUDA 11.3" in message and gpu in message
    assert "Choose a type of the families g4dn, g5, p3, p4d, e.g. ml.g5.2xlarge" in message


def lock_with_images(tmp_path, *tags):
    """The committed lock with its regions' images built for `tags` (one per region, in turn)."""
    lock = json.loads(COMMITTED_LOCK.read_text())
    for index, entry in enumerate(lock["regions"].values()):
        for name in ("training_image_uri", "inference_image_uri"):
            entry[name] = entry[name].replace("-cu113-", f"-{tags[index % len(tags)]}-")
    path = tmp_path / f"jumpstart-{'-'.join(tags)}.lock.json"
    path.write_text(json.dumps(lock))
    return path


@pytest.mark.parametrize("key", ["trainingInstanceType", "endpointInstanceType"])
def test_the_families_follow_the_cuda_of_the_locks_images(key, tmp_path, monkeypatch):
    """The rule reads the CUDA from the lock's images (as `make deploy` may resolve newer ones), not a copy."""
    from stacks import config as settings

    # Given a lock whose images JumpStart now builds for CUDA 12.1 in every region
    monkeypatch.setattr(settings, "JUMPSTART_LOCK_FILE", lock_with_images(tmp_path, "cu121"))
    # Then Ada and Hopper types are accepted, and Blackwell (first built for by CUDA 12.8) still refused
    part = "training" if key == "trainingInstanceType" else "serving"
    for value in ("ml.g6.xlarge", "ml.p5.48xlarge", "ml.g4dn.2xlarge"):
        assert getattr(load({key: value}), part).instance_type == value
    with pytest.raises(ConfigError) as raised:
        load({key: "ml.p6-b200.48xlarge"})
    assert "built for CUDA 12.1" in str(raised.value) and "CUDA 12.8 first builds for it" in str(raised.value)
    # One region still at CUDA 11.3: one template serves them all, so the oldest decides
    monkeypatch.setattr(settings, "JUMPSTART_LOCK_FILE", lock_with_images(tmp_path, "cu121", "cu113"))
    with pytest.raises(ConfigError, match="built for CUDA 11.3"):
        load({key: "ml.g6.xlarge"})
    # An image naming no CUDA cannot be judged: said so, never guessed
    monkeypatch.setattr(settings, "JUMPSTART_LOCK_FILE", lock_with_images(tmp_path, "gpu"))
    with pytest.raises(ConfigError, match="an image names no CUDA version"):
        load({key: "ml.g4dn.2xlarge"})


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
