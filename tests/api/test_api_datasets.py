"""Training from the browser, the API's side: POST /datasets answers presigned POSTs to the staging
prefix; POST /datasets/{name}/commit judges the staged photos with the pipeline's own rules and
commits them into datasets/<name>/ only when all pass. Real handler, moto's S3 (the presigned POSTs
are sent to moto with `requests`, as a browser sends a form)."""

from __future__ import annotations

import io
import json
import re
import threading
from unittest import mock

import pytest
import requests
from botocore.client import BaseClient

from dreambooth_shared.contract import API_GATEWAY_LIMIT_S
from emulator.lambda_runtime import API_CODE, load
from tests.api.conftest import BUCKET
from tests.conftest import ROOT

PROMPT = "a photo of sks dog"


def jpeg(size=(600, 700), colour=(120, 60, 30)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def start(harness, files: dict[str, bytes], name: str = "dog", **extra):
    body = {
        "dataset": name,
        "instance_prompt": PROMPT,
        "files": [{"name": n, "size": len(b)} for n, b in files.items()],
        **extra,
    }
    return harness.api.call("POST", "/datasets", body)


def post_files(answer: dict, files: dict[str, bytes]) -> None:
    for upload in answer["uploads"]:
        sent = requests.post(
            upload["url"], data=upload["fields"], files={"file": (upload["name"], files[upload["name"]])}, timeout=10
        )
        assert sent.status_code in (200, 204), sent.text


def keys(prefix: str) -> list[str]:
    import boto3

    found = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for o in found.get("Contents", []))


PHOTOS = {f"dog{i}.jpg": jpeg(colour=(40 * i, 90, 150)) for i in range(3)}


def test_the_api_asset_ships_the_pipelines_own_rules_not_a_copy():
    # Nothing of the shared package lives in the API's folder: the asset gets the package itself, at synth.
    assert not (API_CODE / "dataset_rules.py").exists() and not (API_CODE / "dreambooth_shared").exists()
    datasets = load(API_CODE, "datasets", {})
    assert datasets.rules.__name__ == "dreambooth_shared.dataset_rules"
    assert datasets.rules.__file__ == str(ROOT / "dreambooth_shared" / "dataset_rules.py")


def test_start_answers_one_presigned_post_per_photo_under_the_staging_prefix(harness):
    answer = start(harness, PHOTOS)
    assert answer.status == 201
    body = answer.json()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", body["upload_id"])
    assert body["staging_prefix"] == f"uploads/dog/{body['upload_id']}/"
    for upload in body["uploads"]:
        # The bucket's regional virtual host (the page's CSP allows exactly that host)
        assert upload["url"] == f"https://{BUCKET}.s3.us-east-1.amazonaws.com/"
        assert upload["fields"]["key"] == body["staging_prefix"] + upload["name"]
        policy = json.loads(__import__("base64").b64decode(upload["fields"]["policy"]))
        assert ["content-length-range", 1, 20 * 1024 * 1024] in policy["conditions"]
        assert {"Content-Type": "image/jpeg"} in policy["conditions"]
    assert keys("uploads/") == [] and keys("datasets/") == []  # nothing written yet


@pytest.mark.parametrize(
    "files, name, expected",
    [
        ({"a.jpg": b"x", "b.jpg": b"x"}, "dog", "2 photos; 3-100 are needed"),
        ({**PHOTOS, "notes.gif": b"GIF89a"}, "dog", "notes.gif: only .jpg, .jpeg or .png photos can be used"),
        ({**PHOTOS, ".DS_Store": b"x"}, "dog", ".DS_Store: only .jpg, .jpeg or .png photos can be used"),
        (PHOTOS, "-bad-", "must match the pattern"),
    ],
)
def test_start_refuses_what_the_pipeline_would_refuse_before_anything_is_uploaded(harness, files, name, expected):
    answer = start(harness, files, name=name)
    assert answer.status == 400 and expected in json.dumps(answer.json())


def test_start_refuses_a_photo_above_the_size_limit(harness):
    body = {
        "dataset": "dog",
        "instance_prompt": PROMPT,
        "files": [{"name": f"d{i}.jpg", "size": 1000} for i in range(3)] + [{"name": "big.jpg", "size": 21 << 20}],
    }
    answer = harness.api.call("POST", "/datasets", body)
    assert answer.status == 400 and "big.jpg: 21.0 MB; at most 20 MB per photo" in answer.text


def test_start_refuses_an_existing_dataset_name(harness):
    harness.s3.put_object(Bucket=BUCKET, Key="datasets/dog/old.jpg", Body=jpeg())
    answer = start(harness, PHOTOS)
    assert answer.status == 409 and "already exists" in answer.json()["error"]["message"]


def test_commit_judges_the_staged_photos_then_copies_them_with_dataset_info_last(harness):
    # Given photos staged through the presigned POSTs
    body = start(harness, PHOTOS, class_prompt="a photo of a dog").json()
    post_files(body, PHOTOS)
    assert keys(body["staging_prefix"]) == [body["staging_prefix"] + n for n in sorted(PHOTOS)]
    # When committed
    answer = harness.api.call(
        "POST",
        "/datasets/dog/commit",
        {"upload_id": body["upload_id"], "instance_prompt": PROMPT, "class_prompt": "a photo of a dog"},
    )
    # Then the photos and dataset_info.json are under datasets/dog/, the staging objects gone
    assert answer.status == 201, answer.text
    result = answer.json()
    assert result["images"] == sorted(PHOTOS) and result["keys"][-1] == "datasets/dog/dataset_info.json"
    assert keys("datasets/dog/") == sorted(["datasets/dog/dataset_info.json"] + [f"datasets/dog/{n}" for n in PHOTOS])
    assert keys("uploads/") == []
    info = json.loads(harness.s3.get_object(Bucket=BUCKET, Key="datasets/dog/dataset_info.json")["Body"].read())
    assert info == {"instance_prompt": PROMPT, "class_prompt": "a photo of a dog"}
    for name, data in PHOTOS.items():
        assert harness.s3.get_object(Bucket=BUCKET, Key=f"datasets/dog/{name}")["Body"].read() == data


def test_commit_refuses_with_every_reason_and_commits_nothing(harness):
    # Given three staged files: a real photo, one too small, and one that is no image at all
    files = {"a.jpg": jpeg(), "b.jpg": jpeg(size=(100, 100)), "c.png": b"this is text, not a PNG"}
    body = start(harness, files).json()
    post_files(body, files)
    answer = harness.api.call(
        "POST", "/datasets/dog/commit", {"upload_id": body["upload_id"], "instance_prompt": PROMPT}
    )
    assert answer.status == 422
    error = answer.json()["error"]
    assert error["code"] == "DatasetRefused"
    reasons = error["reasons"]
    assert any(r.startswith("b.jpg:") for r in reasons) and any(r.startswith("c.png:") for r in reasons)
    assert "1 usable images; at least 3 are needed: add .jpg or .png photos to datasets/dog/" in reasons
    assert keys("datasets/") == [] and keys("uploads/") == []  # nothing committed, staging cleaned up


def test_commit_never_overwrites_a_dataset_that_appeared_meanwhile(harness):
    body = start(harness, PHOTOS).json()
    post_files(body, PHOTOS)
    harness.s3.put_object(Bucket=BUCKET, Key="datasets/dog/dog0.jpg", Body=b"someone else's")
    answer = harness.api.call(
        "POST", "/datasets/dog/commit", {"upload_id": body["upload_id"], "instance_prompt": PROMPT}
    )
    assert answer.status == 409
    assert harness.s3.get_object(Bucket=BUCKET, Key="datasets/dog/dog0.jpg")["Body"].read() == b"someone else's"
    assert keys("datasets/dog/") == ["datasets/dog/dog0.jpg"]


def held_at(operation: str, key: str):
    """Hold the first `operation` call on `key` (any client, any thread) until `release` is set."""
    held, release = threading.Event(), threading.Event()
    original = BaseClient._make_api_call

    def make_api_call(client, name, params):
        if name == operation and params.get("Key") == key and not held.is_set():
            held.set()
            assert release.wait(20), "never released"
        return original(client, name, params)

    return held, release, mock.patch.object(BaseClient, "_make_api_call", make_api_call)


def test_two_concurrent_commits_of_one_upload_give_one_201_and_one_409_and_lose_nothing(harness):
    # Planted defect caught: no commit claim (each commit copies on its own): the second commit finds
    # the first's copies (412) and answers 409, the first then finds the second's, and both stop:
    # no 201, and datasets/dog/ holds the photos without dataset_info.json (the prompt lost).
    body = start(harness, PHOTOS).json()
    post_files(body, PHOTOS)
    request = {"upload_id": body["upload_id"], "instance_prompt": PROMPT}
    answers = {}
    held, release, hold = held_at("CopyObject", "datasets/dog/dog1.jpg")
    with hold:
        # Given a first commit held mid-way through its copies
        first = threading.Thread(
            target=lambda: answers.update(first=harness.api.call("POST", "/datasets/dog/commit", request))
        )
        first.start()
        try:
            assert held.wait(20)
            # When a second commit of the same upload comes meanwhile (a second click, a client's retry)
            answers["second"] = harness.api.call("POST", "/datasets/dog/commit", request)
        finally:
            release.set()
            first.join(20)
    # Then the first commits everything, the second is refused with the reason and changed nothing
    assert answers["first"].status == 201, answers["first"].text
    assert answers["second"].status == 409, answers["second"].text
    assert "being committed by another request" in answers["second"].json()["error"]["message"]
    assert keys("datasets/dog/") == sorted(["datasets/dog/dataset_info.json"] + [f"datasets/dog/{n}" for n in PHOTOS])
    for name, data in PHOTOS.items():
        assert harness.s3.get_object(Bucket=BUCKET, Key=f"datasets/dog/{name}")["Body"].read() == data
    info = json.loads(harness.s3.get_object(Bucket=BUCKET, Key="datasets/dog/dataset_info.json")["Body"].read())
    assert info == {"instance_prompt": PROMPT}
    assert keys("uploads/") == []  # staging and the claim gone
    # And the same commit replayed after it ended is a 409 that says so, changing nothing
    again = harness.api.call("POST", "/datasets/dog/commit", request)
    assert again.status == 409 and "was committed" in again.json()["error"]["message"], again.text
    assert len(keys("datasets/dog/")) == len(PHOTOS) + 1


def test_a_staged_photo_gone_mid_commit_is_a_409_never_a_500(harness):
    # Planted defect caught: CopyObject's NoSuchKey unhandled -> 500 (staging expired, or removed, meanwhile).
    body = start(harness, PHOTOS).json()
    post_files(body, PHOTOS)
    held, release, hold = held_at("CopyObject", "datasets/dog/dog1.jpg")
    answers = {}
    with hold:
        commit = threading.Thread(
            target=lambda: answers.update(
                commit=harness.api.call(
                    "POST", "/datasets/dog/commit", {"upload_id": body["upload_id"], "instance_prompt": PROMPT}
                )
            )
        )
        commit.start()
        try:
            assert held.wait(20)
            harness.s3.delete_object(Bucket=BUCKET, Key=body["staging_prefix"] + "dog1.jpg")
        finally:
            release.set()
            commit.join(20)
    assert answers["commit"].status == 409, answers["commit"].text
    assert "the staged dog1.jpg is gone" in answers["commit"].json()["error"]["message"]
    assert "datasets/dog/dataset_info.json" not in keys("datasets/dog/")  # never a dataset without its photos
    assert keys("uploads/dog/.commit") == []  # the claim released on the refusal too


def test_a_claim_released_just_before_a_second_commit_reads_it_is_a_409_never_a_500(harness):
    # Planted defect caught: HeadObject's 403 re-raised (500). In AWS a HeadObject of a key that is
    # gone answers 403, not 404, to a caller without an s3:ListBucket that covers it: the API role's
    # is held to prefixes by an s3:prefix condition, which HeadObject does not send. moto answers
    # 404 whatever the grants, so the test answers as S3 does for that role.
    from botocore.exceptions import ClientError

    body = start(harness, PHOTOS).json()
    post_files(body, PHOTOS)
    request = {"upload_id": body["upload_id"], "instance_prompt": PROMPT}
    # Given another commit's claim, which it releases between this commit's claim attempt and its read
    harness.s3.put_object(Bucket=BUCKET, Key="uploads/dog/.commit", Body=b"")
    original = BaseClient._make_api_call

    def make_api_call(client, name, params):
        if name == "HeadObject" and params.get("Key") == "uploads/dog/.commit":
            original(client, "DeleteObject", {"Bucket": BUCKET, "Key": "uploads/dog/.commit"})
            raise ClientError(
                {"Error": {"Code": "403", "Message": "Forbidden"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, name
            )
        return original(client, name, params)

    with mock.patch.object(BaseClient, "_make_api_call", make_api_call):
        answer = harness.api.call("POST", "/datasets/dog/commit", request)
    # Then this commit is told another one was under way (its answer says how it went), and changed nothing
    assert answer.status == 409, answer.text
    assert "being committed by another request" in answer.json()["error"]["message"]
    assert keys("datasets/dog/") == []
    assert keys(body["staging_prefix"]) == sorted(body["staging_prefix"] + n for n in PHOTOS)


def test_a_commit_claim_left_by_a_stopped_function_is_taken_over_once_stale(harness, monkeypatch):
    # A claim is stale after API Gateway's limit, which stops the function (COMMIT_CLAIM_STALE_S).
    datasets, stale_s = harness.api_module.datasets, API_GATEWAY_LIMIT_S
    body = start(harness, PHOTOS).json()
    post_files(body, PHOTOS)
    request = {"upload_id": body["upload_id"], "instance_prompt": PROMPT}
    # Given a claim whose commit was stopped (API Gateway's 29 s) before it could release it
    harness.s3.put_object(Bucket=BUCKET, Key="uploads/dog/.commit", Body=b"")
    claimed_at = harness.s3.head_object(Bucket=BUCKET, Key="uploads/dog/.commit")["LastModified"].timestamp()
    # Then while it may still be running, a commit is refused
    monkeypatch.setattr(datasets, "clock", lambda: claimed_at + stale_s - 1)
    assert harness.api.call("POST", "/datasets/dog/commit", request).status == 409
    # And once it cannot be, the claim is taken over and the commit goes through
    monkeypatch.setattr(datasets, "clock", lambda: claimed_at + stale_s + 1)
    answer = harness.api.call("POST", "/datasets/dog/commit", request)
    assert answer.status == 201, answer.text
    assert keys("uploads/") == []


def test_commit_of_an_unknown_upload_is_404(harness):
    answer = harness.api.call(
        "POST", "/datasets/dog/commit", {"upload_id": "20261201T000000Z-00000000", "instance_prompt": PROMPT}
    )
    assert answer.status == 404 and "start again with POST /datasets" in answer.text


def test_the_upload_schema_takes_the_dataset_name_rule_from_the_pipelines_module():
    from dreambooth_shared import dataset_rules as rules

    spec = load(API_CODE, "spec", {})
    assert spec.request_schema("DatasetUploadRequest")["properties"]["dataset"]["pattern"] == rules.DATASET_NAME.pattern


def test_the_api_function_has_exactly_the_s3_grants_for_staging_and_commit(created_stack):
    from aws_cdk.assertions import Template

    template = Template.from_stack(created_stack)
    (role_id,) = [
        logical
        for logical, role in template.find_resources("AWS::IAM::Role").items()
        if "Text-to-image API" in role["Properties"].get("Description", "")
    ]
    policies = template.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [{"Ref": role_id}]}})
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]

    def resources_for(action: str) -> set[str]:
        found = set()
        for statement in statements:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if action in actions:
                for resource in (
                    statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                ):
                    found.add(json.dumps(resource))
        return found

    def prefix_of(resource: str) -> str:
        return json.loads(resource)["Fn::Join"][1][-1] if "Fn::Join" in resource else "<bucket>"

    assert {prefix_of(r) for r in resources_for("s3:DeleteObject")} == {"/uploads/*"}
    # uploads/ and datasets/: staging and commit; inference/requests/: the asynchronous request objects
    assert {prefix_of(r) for r in resources_for("s3:PutObject")} == {
        "/uploads/*",
        "/datasets/*",
        "/inference/requests/*",
    }
    assert {prefix_of(r) for r in resources_for("s3:GetObject")} == {"/uploads/*"}  # image links: the signer role
    listing = [s for s in statements if s["Action"] == "s3:ListBucket"]
    assert sorted(p for s in listing for p in s["Condition"]["StringLike"]["s3:prefix"]) == ["datasets/*", "uploads/*"]
    for wide in ("s3:DeleteObject*", "s3:GetObject*", "s3:List*", "s3:*"):
        assert not resources_for(wide), wide


def test_a_created_bucket_lets_the_page_origin_post_and_a_reused_one_is_left_alone(created_stack, imported_stack):
    from aws_cdk.assertions import Template

    template = Template.from_stack(created_stack)
    (bucket,) = template.find_resources("AWS::S3::Bucket").values()
    (rule,) = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedMethods"] == ["GET", "POST"] and rule["AllowedHeaders"] == ["*"]
    (origin,) = rule["AllowedOrigins"]
    api_id = next(iter(template.find_resources("AWS::ApiGateway::RestApi")))
    assert origin["Fn::Join"][1][:2] == ["https://", {"Ref": api_id}]
    assert Template.from_stack(imported_stack).find_resources("AWS::S3::Bucket") == {}
