"""Serving the training output as a prefix: the packaging step (unpack model.tar.gz, add code/) and both kinds of output."""

from __future__ import annotations

import io
import json
import tarfile

import boto3
import pytest
from moto import mock_aws

from emulator import PipelineHarness, SageMakerSimulator
from emulator.pipeline_harness import JUMPSTART_INFERENCE_PLACEHOLDER
from tests.pipeline.conftest import dog_photos

DOG_PHOTOS = dog_photos()


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


@pytest.fixture
def s3():
    import model_package  # noqa: F401 (lambda/training, on pytest.ini's pythonpath)

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in ("data", "jumpstart"):
            client.create_bucket(Bucket=bucket)
        yield client


def keys(s3, prefix):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket="data", Prefix=prefix).get("Contents", []))


def test_an_output_without_code_gets_jumpstarts_inference_files_under_code(s3):
    import model_package

    s3.put_object(Bucket="data", Key="m/output/model/unet/w.safetensors", Body=b"weights")
    s3.put_object(
        Bucket="jumpstart",
        Key="inference.tar.gz",
        Body=tarball({"./inference.py": b"print('serve')", "requirements.txt": b"diffusers", "lib/util.py": b"x = 1"}),
    )

    result = model_package.add_inference_code(s3, "s3://data/m/output/model/", "s3://jumpstart/inference.tar.gz")

    assert result == {"modelDataUri": "s3://data/m/output/model/", "added": True, "files": 3}
    assert keys(s3, "m/") == [
        "m/output/model/code/inference.py",
        "m/output/model/code/lib/util.py",
        "m/output/model/code/requirements.txt",
        "m/output/model/unet/w.safetensors",
    ]
    body = s3.get_object(Bucket="data", Key="m/output/model/code/inference.py")["Body"].read()
    assert body == b"print('serve')"


def test_an_output_with_its_own_code_is_left_as_it_is(s3):
    import model_package

    s3.put_object(Bucket="data", Key="m/output/model/code/inference.py", Body=b"trained with it")

    result = model_package.add_inference_code(s3, "s3://data/m/output/model", "s3://jumpstart/never-read.tar.gz")

    assert result == {"modelDataUri": "s3://data/m/output/model/", "added": False, "files": 0}
    assert s3.get_object(Bucket="data", Key="m/output/model/code/inference.py")["Body"].read() == b"trained with it"


@pytest.mark.parametrize(
    "files, message",
    [
        ({"../evil.py": b"", "inference.py": b""}, "unsafe path"),
        ({"/etc/passwd": b"", "inference.py": b""}, "unsafe path"),
        ({"src/inference.py": b""}, "no inference.py at its top level"),
    ],
)
def test_a_bad_script_tarball_is_refused_and_nothing_is_written(s3, files, message):
    import model_package

    s3.put_object(Bucket="jumpstart", Key="bad.tar.gz", Body=tarball(files))
    with pytest.raises(model_package.PackagingError, match=message):
        model_package.add_inference_code(s3, "s3://data/m/output/model/", "s3://jumpstart/bad.tar.gz")
    assert keys(s3, "m/") == []


def test_a_model_tarball_is_unpacked_beside_it_and_gets_the_code(s3):
    import model_package

    s3.put_object(
        Bucket="data",
        Key="m/output/model.tar.gz",
        Body=tarball({"./model_index.json": b"{}", "unet/w.safetensors": b"weights"}),
    )
    s3.put_object(Bucket="jumpstart", Key="inference.tar.gz", Body=tarball({"inference.py": b"print('serve')"}))

    result = model_package.add_inference_code(s3, "s3://data/m/output/model.tar.gz", "s3://jumpstart/inference.tar.gz")

    assert result == {"modelDataUri": "s3://data/m/output/model/", "added": True, "files": 1}
    assert keys(s3, "m/output/model/") == [
        "m/output/model/code/inference.py",
        "m/output/model/model_index.json",
        "m/output/model/unet/w.safetensors",
    ]
    assert s3.get_object(Bucket="data", Key="m/output/model/unet/w.safetensors")["Body"].read() == b"weights"
    # Run again (a retried task): the same objects, nothing else.
    assert (
        model_package.add_inference_code(s3, "s3://data/m/output/model.tar.gz", "s3://jumpstart/inference.tar.gz")[
            "modelDataUri"
        ]
        == result["modelDataUri"]
    )
    assert len(keys(s3, "m/output/model/")) == 3


def test_a_model_tarball_with_its_own_code_is_only_unpacked(s3):
    import model_package

    s3.put_object(
        Bucket="data",
        Key="m/output/model.tar.gz",
        Body=tarball({"code/inference.py": b"trained with it", "model_index.json": b"{}"}),
    )

    result = model_package.add_inference_code(s3, "s3://data/m/output/model.tar.gz", "s3://jumpstart/never-read.tar.gz")

    assert result == {"modelDataUri": "s3://data/m/output/model/", "added": False, "files": 0}
    assert s3.get_object(Bucket="data", Key="m/output/model/code/inference.py")["Body"].read() == b"trained with it"


def test_a_model_tarball_reaching_outside_its_prefix_is_refused(s3):
    import model_package

    s3.put_object(Bucket="data", Key="m/output/model.tar.gz", Body=tarball({"../../escape.txt": b"x"}))
    with pytest.raises(model_package.PackagingError, match="unsafe path in the model tarball"):
        model_package.add_inference_code(s3, "s3://data/m/output/model.tar.gz", "s3://jumpstart/never-read.tar.gz")
    assert keys(s3, "m/output/model/") == []


@pytest.mark.parametrize("output_has_code", [False, True], ids=["output-without-code", "output-with-code"])
def test_both_kinds_of_training_output_are_deployed_and_serve(synthesized, output_has_code):
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(output_has_code=output_has_code)) as h:
        model_id = h.train_and_deploy("doppler", DOG_PHOTOS)

        model = h.models()[model_id]
        assert model["status"] == "live", model.get("failureReason")
        prefix = model["artifactUri"].split(h.bucket + "/", 1)[1]
        assert prefix.endswith(f"{model_id}/output/model/")
        code = h.client("s3").get_object(Bucket=h.bucket, Key=prefix + "code/inference.py")["Body"].read()
        # Added from JumpStart's tarball only when the training output lacked it.
        assert (code == JUMPSTART_INFERENCE_PLACEHOLDER) is (not output_has_code)
        # The model serves the uncompressed prefix with the hosting spec's environment.
        container = h.client("sagemaker").describe_model(ModelName=model_id)["PrimaryContainer"]
        assert container["ModelDataSource"]["S3DataSource"] == {
            "S3Uri": model["artifactUri"],
            "S3DataType": "S3Prefix",
            "CompressionType": "None",
        }
        assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
        assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
        assert container["Environment"]["MODEL_CACHE_ROOT"] == "/opt/ml/model"
        job = h.client("sagemaker").describe_training_job(TrainingJobName=model_id)
        assert "CompressionType" not in job["OutputDataConfig"]  # SageMaker's default tarball, unpacked after
        assert job["ModelArtifacts"]["S3ModelArtifacts"] == model["artifactUri"].rstrip("/") + ".tar.gz"
        # And it answers.
        answer = h.api("POST", "/generations", {"prompt": "Doppler on the beach", "seed": 7})
        h.wait_until_idle(30)
        generation = h.api("GET", f"/generations/{answer.json()['id']}").json()
        assert generation["status"] == "succeeded", json.dumps(generation)
