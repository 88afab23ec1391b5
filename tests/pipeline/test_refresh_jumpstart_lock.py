"""The lock refresh script, run through the sagemaker SDK's local-metadata mode (no AWS)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import pytest

from scripts import refresh_jumpstart_lock as refresh
from stacks.config import ServingConfig, TrainingConfig
from stacks.training.jumpstart_lock import LOCK_FILE, JumpStartLock
from tests.conftest import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "jumpstart"


@pytest.fixture(autouse=True)
def fresh_jumpstart_cache():
    """The SDK caches manifests and specs per region for the process: each test reads its own metadata."""
    from sagemaker.core.jumpstart.accessors import JumpStartModelsAccessor

    JumpStartModelsAccessor.reset_cache()
    yield
    JumpStartModelsAccessor.reset_cache()


@pytest.fixture
def local_metadata(monkeypatch):
    monkeypatch.setenv("AWS_JUMPSTART_MANIFEST_LOCAL_ROOT_DIR_OVERRIDE", str(FIXTURE))
    monkeypatch.setenv("AWS_JUMPSTART_SPECS_LOCAL_ROOT_DIR_OVERRIDE", str(FIXTURE))


def test_refresh_rewrites_the_lock_from_jumpstart_metadata(local_metadata, tmp_path):
    lock_path = tmp_path / "jumpstart.lock.json"
    shutil.copy(LOCK_FILE, lock_path)
    before = json.loads(lock_path.read_text())

    lock = refresh.refresh(lock_path, ["eu-west-1", "us-east-1"], "*", now=datetime(2026, 11, 25, tzinfo=timezone.utc))

    assert lock["model_version"] == "9.9.1"
    assert lock["resolved_at"] == "2026-11-25T00:00:00Z"
    assert lock["training_instance_type"] == TrainingConfig.instance_type == "ml.g4dn.2xlarge"
    assert "resolved with sagemaker.core" in lock["source"]
    eu = lock["regions"]["eu-west-1"]
    assert eu == {
        "training_image_uri": "763104351884.dkr.ecr.eu-west-1.amazonaws.com/huggingface-pytorch-training:9.9.1-fixture-gpu",
        "training_script_uri": "s3://jumpstart-cache-prod-eu-west-1/source-directory-tarballs/stabilityai/"
        "transfer_learning/txt2img/fixture/sourcedir.tar.gz",
        "base_model_uri": "s3://jumpstart-cache-prod-eu-west-1/stabilityai-training/fixture-train-model.tar.gz",
        "inference_image_uri": "763104351884.dkr.ecr.eu-west-1.amazonaws.com/huggingface-pytorch-inference:9.9.1-fixture-gpu",
        "inference_script_uri": "s3://jumpstart-cache-prod-eu-west-1/source-directory-tarballs/stabilityai/"
        "inference/txt2img/fixture/sourcedir.tar.gz",
    }
    # The hosting spec's environment replaces the last-known one, which was marked unresolved.
    assert before["unresolved"]["fields"] == ["inference_script_uri", "inference_environment"]
    assert lock["inference_environment"] == {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "ENDPOINT_SERVER_TIMEOUT": "1234",
    }
    assert "unresolved" not in lock
    # Defaults from the spec, without the container wiring the pipeline sets itself.
    assert lock["hyperparameters"] == {
        "epochs": "7",
        "learning_rate": "3e-06",
        "with_prior_preservation": "False",
        "seed": "42",
    }
    assert lock["metric_definitions"] == [{"Name": "train_avg_loss", "Regex": "fixture train_avg_loss=([0-9\\.]+)"}]
    # Regions not asked for and the project's own choices are kept.
    assert lock["regions"]["ap-south-1"] == before["regions"]["ap-south-1"]
    assert lock["project_hyperparameters"] == before["project_hyperparameters"]
    # Each resolved region is recorded with its version and time; the others stay last-known (stale)
    assert lock["resolved_regions"] == {
        r: {
            "resolved_at": "2026-11-25T00:00:00Z",
            "model_version": "9.9.1",
            "training_instance_type": "ml.g4dn.2xlarge",
            "endpoint_instance_type": "ml.g4dn.2xlarge",
        }
        for r in ("eu-west-1", "us-east-1")
    }
    # And the stack can read what it wrote.
    loaded = JumpStartLock.load(lock_path)
    assert loaded.hyperparameters["max_steps"] == "400" and loaded.hyperparameters["seed"] == "42"
    when = datetime(2026, 11, 26, tzinfo=timezone.utc)
    assert loaded.staleness("eu-west-1", when) is None
    assert "never resolved" in loaded.staleness("ap-south-1", when)


def test_the_images_are_resolved_for_the_configured_default_instance_types(local_metadata, tmp_path, monkeypatch):
    """The instance types come from the settings (trainingInstanceType's and endpointInstanceType's defaults),
    not a copy in the script: the training image for the training instance, the inference image for the endpoint's."""
    from sagemaker.core import image_uris

    asked, retrieve = [], image_uris.retrieve

    def recording(*args, **kwargs):
        asked.append(kwargs["instance_type"])
        return retrieve(*args, **kwargs)

    monkeypatch.setattr(image_uris, "retrieve", recording)
    monkeypatch.setattr(TrainingConfig, "instance_type", "ml.g5.2xlarge")
    monkeypatch.setattr(ServingConfig, "instance_type", "ml.g4dn.xlarge")
    lock_path = tmp_path / "jumpstart.lock.json"
    shutil.copy(LOCK_FILE, lock_path)

    lock = refresh.refresh(lock_path, ["us-east-1"], "*")

    assert asked == ["ml.g5.2xlarge", "ml.g4dn.xlarge"]  # the training and the inference image
    assert lock["training_instance_type"] == "ml.g5.2xlarge" and lock["endpoint_instance_type"] == "ml.g4dn.xlarge"
    assert not hasattr(refresh, "INSTANCE_TYPE")


def test_without_metadata_the_script_fails_clearly_and_leaves_the_lock_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AWS_JUMPSTART_MANIFEST_LOCAL_ROOT_DIR_OVERRIDE", str(tmp_path / "empty"))
    monkeypatch.setenv("AWS_JUMPSTART_SPECS_LOCAL_ROOT_DIR_OVERRIDE", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    lock_path = tmp_path / "jumpstart.lock.json"
    shutil.copy(LOCK_FILE, lock_path)

    assert refresh.main(["--lock", str(lock_path), "--region", "us-east-1"]) == 1

    assert lock_path.read_text() == LOCK_FILE.read_text()
    assert "Could not resolve JumpStart metadata" in capsys.readouterr().err


def test_the_committed_lock_says_where_its_values_come_from():
    lock = json.loads(LOCK_FILE.read_text())
    if lock["resolved_at"] is None:
        assert "NOT resolved from JumpStart" in lock["source"] and "JUMPSTART.md" in lock["source"]
    else:
        assert "resolved with sagemaker.core" in lock["source"]
    for region, entry in lock["regions"].items():
        assert region in entry["training_image_uri"] and f"jumpstart-cache-prod-{region}/" in entry["base_model_uri"]


# ---- verification of one region's artifacts (what make deploy and dreambooth preflight check) --------


class Refusing:
    """A client whose every call answers `code` (as AWS does for a denied or unknown request)."""

    def __init__(self, code, status=403):
        self.code, self.status = code, status

    def __getattr__(self, operation):
        from botocore.exceptions import ClientError

        def call(**kwargs):
            raise ClientError(
                {
                    "Error": {"Code": self.code, "Message": "refused"},
                    "ResponseMetadata": {"HTTPStatusCode": self.status},
                },
                operation,
            )

        return call


def test_an_uncompressed_model_prefix_is_listed_not_headed():
    """JumpStart's 2.x artifacts can be S3 prefixes (`.../artifacts/inference-prepack/v1.0.0/`)."""
    import boto3
    from moto import mock_aws

    from emulator.service_model import ServiceModelCheck
    from tests import jumpstart_fixture

    prefix = "s3://jumpstart-cache-prod-us-east-1/stabilityai-txt2img/artifacts/inference-prepack/v1.0.0/"
    with mock_aws(), ServiceModelCheck() as check:
        session = boto3.Session(region_name="us-east-1")
        values = {**jumpstart_fixture.artifacts("us-east-1"), "base_model_uri": prefix}
        s3 = session.client("s3")
        assert refresh.check_s3_artifact(s3, "base_model_uri", prefix).status == refresh.MISSING
        jumpstart_fixture.publish(session, values=values)
        found = refresh.verify_artifacts(session, "us-east-1", values)
    assert check.violations == [] and check.calls
    assert [c.status for c in found] == [refresh.FOUND] * 5
    assert next(c for c in found if c.field == "base_model_uri").detail.startswith("ListObjectsV2 prefix")


def test_a_head_object_403_is_settled_by_listing():
    """S3 answers 403, not 404, for a missing key to a caller that may not list the bucket."""
    import boto3
    from moto import mock_aws

    from tests import jumpstart_fixture

    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        values = jumpstart_fixture.publish(session)
        s3 = session.client("s3")

        class Head403:
            def head_object(self, **kwargs):
                return Refusing("403").head_object(**kwargs)

            def list_objects_v2(self, **kwargs):
                return s3.list_objects_v2(**kwargs)

        uri = values["training_script_uri"]
        assert refresh.check_s3_artifact(Head403(), "training_script_uri", uri).status == refresh.FOUND
        assert refresh.check_s3_artifact(Head403(), "training_script_uri", uri + ".gone").status == refresh.MISSING
    assert (
        refresh.check_s3_artifact(Refusing("AccessDenied"), "training_script_uri", uri).status == refresh.NOT_VERIFIED
    )


def test_an_image_the_deployer_may_not_read_is_not_verified_rather_than_missing():
    uri = "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-inference:1.10.2-gpu-py38-cu113"
    denied = refresh.check_image(Refusing("AccessDeniedException", 400), "inference_image_uri", uri)
    assert denied.status == refresh.NOT_VERIFIED and "ecr:BatchGetImage" in denied.detail
    gone = refresh.check_image(Refusing("RepositoryNotFoundException", 400), "inference_image_uri", uri)
    assert gone.status == refresh.MISSING and "huggingface-pytorch-inference" in gone.detail
    with pytest.raises(Exception, match="ThrottlingException"):  # anything else is not a finding
        refresh.check_image(Refusing("ThrottlingException", 400), "inference_image_uri", uri)
