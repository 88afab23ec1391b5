"""The whole pipeline over a reused bucket whose default encryption is SSE-KMS with a customer key
(`-c bucketName=... -c bucketKmsKeyArn=...`): every S3 read and write of every role is judged
with the key as S3 uses it (emulator/iam.py), so a role without its part of the key fails here
as it would fail in AWS. Train from the web page's flow (presigned POSTs, commit), deploy, generate."""

from __future__ import annotations

import json
import time

import pytest
import requests
from botocore.exceptions import ClientError

from emulator import PipelineHarness, SageMakerSimulator, synthesize
from emulator.account import BUCKET_KEY_ARN
from emulator.assembly import FAST_CONTEXT, KMS_BUCKET_CONTEXT
from emulator.iam import statements_matching
from tests.pipeline.conftest import jpeg_bytes

PHOTOS = {f"dog{i}.jpg": jpeg_bytes(512 + i, 512) for i in range(3)}
PROMPT = "a photo of sks Doppler dog"


@pytest.fixture(scope="module")
def synthesized():
    return synthesize({**FAST_CONTEXT, **KMS_BUCKET_CONTEXT})


def harness(synthesized, **kwargs) -> PipelineHarness:
    return PipelineHarness(
        synthesized=synthesized,
        simulator=SageMakerSimulator(training_s=1, endpoint_s=1),
        bucket_key_arn=BUCKET_KEY_ARN,
        **kwargs,
    )


def train_from_the_page(h: PipelineHarness, dataset: str) -> None:
    """The web page's flow: presigned POSTs to the staging prefix, the commit, then S3's events for
    what the commit wrote under datasets/<dataset>/ (as EventBridge delivers them)."""
    started = h.api(
        "POST",
        "/datasets",
        {
            "dataset": dataset,
            "instance_prompt": PROMPT,
            "files": [{"name": n, "size": len(b)} for n, b in PHOTOS.items()],
        },
    )
    assert started.status == 201, started.text
    for upload in started.json()["uploads"]:
        sent = requests.post(
            upload["url"], data=upload["fields"], files={"file": (upload["name"], PHOTOS[upload["name"]])}, timeout=10
        )
        assert sent.status_code in (200, 204), sent.text
    committed = h.api(
        "POST", f"/datasets/{dataset}/commit", {"upload_id": started.json()["upload_id"], "instance_prompt": PROMPT}
    )
    assert committed.status == 201, committed.text
    s3 = h.client("s3")
    for key in committed.json()["keys"]:
        head = s3.head_object(Bucket=h.bucket, Key=key)
        h.deliver(h.s3_event(key, size=head["ContentLength"], etag=head["ETag"].strip('"')))


def finished(h: PipelineHarness, generation_id: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = h.api("GET", f"/generations/{generation_id}").json()
        if body["status"] != "queued":
            return body
        h.clock.wait(0.05)
    raise TimeoutError(f"{generation_id} still queued; refused: {[str(d) for d in h.iam.denials]}")


def test_over_a_kms_bucket_the_page_trains_a_model_that_deploys_and_generates(synthesized):
    with harness(synthesized) as h:
        # Given the reused bucket, encrypted by default with the customer key
        assert h.bucket_key_arn in json.dumps(h.client("s3").get_bucket_encryption(Bucket=h.bucket))
        # When a dataset comes from the page, trains and deploys
        train_from_the_page(h, "doppler")
        h.wait_until_idle(90)
        refused = [str(d) for d in h.iam.denials]
        assert [r.status for r in h.training_runs()] == ["SUCCEEDED"], refused
        assert [r.status for r in h.deploy_runs()] == ["SUCCEEDED"], refused
        (model_id,) = h.models()
        assert h.models()[model_id]["status"] == "live"
        # and a generation is asked for
        created = h.api("POST", "/generations", {"prompt": "Doppler on the beach", "seed": 7})
        assert created.status == 202, created.text
        body = finished(h, created.json()["id"])
        assert body["status"] == "succeeded", body
        (image,) = body["images"]
        fetched = requests.get(image["url"], timeout=5)  # the signer's presigned GET: it decrypts
        assert fetched.status_code == 200 and fetched.content[:2] == b"\xff\xd8"
        # Then everything each role wrote is under the bucket's key, and no call was refused
        s3 = h.client("s3")
        written = [o["Key"] for o in s3.list_objects_v2(Bucket=h.bucket)["Contents"]]
        for prefix in ("datasets/doppler/", "models/doppler/", "inference/", "generated/"):
            key = next(k for k in written if k.startswith(prefix))
            head = s3.head_object(Bucket=h.bucket, Key=key)
            assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", BUCKET_KEY_ARN), key
        assert any(k.endswith("/snapshot.json") for k in written)
        assert any("/output/model/code/" in k for k in written)  # the packaging step's copy of the script
        assert h.iam.denials == []


def _without_key(role_part: str, action: str):
    """The bucket key's `action` taken away from the role whose logical id contains `role_part`."""
    matching = statements_matching(action, resource_contains=BUCKET_KEY_ARN)
    return lambda role, statement: role_part in role and matching(role, statement)


def test_without_its_data_key_the_snapshot_function_cannot_write_the_snapshot(synthesized):
    # Given the snapshot function without kms:GenerateDataKey on the bucket key (the defect issue 18 found:
    # its snapshot.json is a PutObject under SSE-KMS), when a dataset is uploaded
    with harness(synthesized, remove_grants=_without_key("Snapshot", "kms:GenerateDataKey")) as h:
        h.iam.expect_denials(f"kms:GenerateDataKey on {BUCKET_KEY_ARN}")
        h.upload_dataset("doppler", PHOTOS)
        h.wait_until_idle(90)
        # Then the training run fails at its first step, saying so, and nothing is trained
        (run,) = h.training_runs()
        assert run.status == "FAILED"
        (note,) = h.notifications()
        assert "taking the dataset snapshot failed: AccessDenied" in note["message"]
        assert h.simulator.count("create_training_job") == 0 and not h.deploy_runs()
        (denial,) = {str(d) for d in h.iam.denials}
        assert "/PipelineSnapshotRole" in denial and "kms:GenerateDataKey" in denial


def test_the_key_is_asked_for_as_s3_asks_for_it_per_operation(synthesized):
    # The dispatcher's role may write inference/requests/ but read nothing: with SSE-KMS it may
    # PutObject and start a multipart upload (kms:GenerateDataKey), not upload a part (kms:Decrypt),
    # and not copy an object it may not read (s3:GetObject on the source).
    with harness(synthesized) as h:
        (dispatch,) = [r for r in h.iam.roles if r.startswith("ApiDispatchRole")]
        s3, key = h.iam.client("s3", dispatch), "inference/requests/probe.json"
        h.iam.expect_denials("kms:Decrypt", "s3:GetObject on arn:aws:s3:::")
        s3.put_object(Bucket=h.bucket, Key=key, Body=b"{}")
        upload = s3.create_multipart_upload(Bucket=h.bucket, Key=key)["UploadId"]
        with pytest.raises(ClientError, match="AccessDenied"):
            s3.upload_part(Bucket=h.bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"{}")
        with pytest.raises(ClientError, match="AccessDenied"):
            s3.copy_object(Bucket=h.bucket, Key=key, CopySource={"Bucket": h.bucket, "Key": key})
        assert [d.action for d in h.iam.denials] == ["kms:Decrypt", "s3:GetObject"]  # a refusal ends the request
        # An object written asking for SSE-S3 itself needs no data key from the bucket's key
        (results,) = [r for r in h.iam.roles if r.startswith("ApiResultsRole")]
        h.iam.client("s3", results).put_object(
            Bucket=h.bucket, Key="generated/g/0.jpg", Body=b"x", ServerSideEncryption="AES256"
        )
        assert len(h.iam.denials) == 2


def test_without_decrypt_the_image_signer_may_still_head_but_not_get_an_image(synthesized):
    with harness(synthesized, remove_grants=_without_key("ApiImageSigner", "kms:Decrypt")) as h:
        h.client("s3").put_object(Bucket=h.bucket, Key="generated/g/0.jpg", Body=b"jpeg")
        (signer,) = [r for r in h.iam.roles if r.startswith("ApiImageSigner")]
        s3 = h.iam.client("s3", signer)
        h.iam.expect_denials(f"kms:Decrypt on {BUCKET_KEY_ARN}")
        assert s3.head_object(Bucket=h.bucket, Key="generated/g/0.jpg")["ContentLength"] == 4  # metadata only
        with pytest.raises(ClientError, match="AccessDenied"):
            s3.get_object(Bucket=h.bucket, Key="generated/g/0.jpg")
