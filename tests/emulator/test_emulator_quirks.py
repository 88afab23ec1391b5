"""moto's quirks that would hide a defect, corrected as AWS behaves (emulator/moto_patches.py,
emulator/iam.py), and the product's paths they used to hide."""

from __future__ import annotations

import json
import re
import time

import boto3
import pytest
from moto import mock_aws

from emulator import PipelineHarness, SageMakerSimulator, synthesize
from tests.pipeline.conftest import jpeg_bytes

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
PHOTOS = {f"dog{i}.jpg": jpeg_bytes(512 + i, 512) for i in range(3)}
CAT_PHOTOS = {f"cat{i}.jpg": jpeg_bytes(600, 600 + i) for i in range(3)}
CONTEXT = {"quietWindowSeconds": 2, "endpointPollSeconds": 1, "endpointMaxWaitMinutes": 5, "idleMinutes": 1}


@pytest.fixture(scope="module")
def synthesized():
    return synthesize(CONTEXT)


def test_each_nameless_start_is_an_execution_of_its_own_named_with_a_uuid():
    # Planted defect caught: moto's own naming (`None`): the second identical start answers the
    # first execution's ARN, and a start after it ended is refused (ExecutionAlreadyExists).
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = sfn.create_state_machine(
            name="m",
            roleArn="arn:aws:iam::123456789012:role/r",
            definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}}),
        )["stateMachineArn"]
        # Given two identical nameless starts while the first runs, and a third after both ended
        arns = [sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"] for _ in range(2)]
        while any(sfn.describe_execution(executionArn=a)["status"] == "RUNNING" for a in arns):
            time.sleep(0.05)
        arns.append(sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"])
        # Then each is its own execution, named with a UUID as in AWS
        names = [arn.rsplit(":", 1)[-1] for arn in arns]
        assert len(set(arns)) == 3 and all(UUID.fullmatch(n) for n in names), names
        assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 3
        # And a named start is still idempotent while it runs (AWS's rule for the same name and input)
        named = [
            sfn.start_execution(stateMachineArn=machine, name="same", input="{}")["executionArn"] for _ in range(2)
        ]
        assert named[0] == named[1] and named[0].endswith(":same")


def test_a_stopped_execution_reads_aborted_as_soon_as_stop_execution_answers():
    # Planted defect caught: moto's own stop (`moto_s`), which marks the execution ABORTED only from
    # its thread later: the describe right after the stop still reads RUNNING.
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = sfn.create_state_machine(
            name="m",
            roleArn="arn:aws:iam::123456789012:role/r",
            definition=json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}}),
        )["stateMachineArn"]
        # Given an execution waiting in its Wait state
        arn = sfn.start_execution(stateMachineArn=machine, name="w", input="{}")["executionArn"]
        deadline = time.monotonic() + 30
        while "WaitStateEntered" not in [e["type"] for e in sfn.get_execution_history(executionArn=arn)["events"]]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # When it is stopped, then it reads ABORTED at once, as in AWS
        sfn.stop_execution(executionArn=arn)
        assert sfn.describe_execution(executionArn=arn)["status"] == "ABORTED"
        # And a start of the same name is refused, not answered by a "running" twin
        with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
            sfn.start_execution(stateMachineArn=machine, name="w", input="{}")


def test_live_switches_start_one_deployment_each_and_a_doubled_one_changes_nothing(synthesized):
    # PUT /models/live is the product's one nameless StartExecution (lambda/api/registry.py).
    # Planted defect caught: moto's naming: the second switch answers 500 (ExecutionAlreadyExists on
    # the execution named None), and the doubled start below collapses into one execution.
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(endpoint_s=1)) as h:
        dog = h.train_and_deploy("doppler", PHOTOS)
        cat = h.train_and_deploy("cat", CAT_PHOTOS)
        assert h.live_pointer()["liveModelId"] == cat
        # When the operator switches back to the first model, then again to the second
        for model in (dog, cat):
            answer = h.api("PUT", "/models/live", {"model_id": model})
            assert answer.status == 202, answer.text
            h.wait_until_idle(60)
            assert h.live_pointer()["liveModelId"] == model
        switches = [r for r in h.deploy_runs() if UUID.fullmatch(r.name)]
        assert [(r.input["modelId"], r.status) for r in switches] == [(dog, "SUCCEEDED"), (cat, "SUCCEEDED")]

        # Given two switches to the dog model that both passed the API's "no deployment running" check
        # (a double click racing): each StartExecution is the API's own call, without a name
        updates = h.simulator.count("update_endpoint")
        sfn = h.client("stepfunctions")
        raced = {
            sfn.start_execution(stateMachineArn=h.deploy_machine_arn, input=json.dumps({"modelId": dog}))[
                "executionArn"
            ]
            for _ in range(2)
        }
        h.wait_until_idle(60)
        # Then AWS runs both, one after the other (the deployment lock); the second finds the model
        # live on its endpoint and changes nothing: one update, the model live, nothing failed.
        runs = {r.arn: r for r in h.deploy_runs()}
        assert len(raced) == 2 and {runs[a].status for a in raced} == {"SUCCEEDED"}
        assert h.simulator.count("update_endpoint") == updates + 1
        assert h.live_pointer()["liveModelId"] == dog and h.models()[dog]["status"] == "live"
        assert h.models()[cat]["status"] == "retired"


def test_a_dataset_named_with_capitals_trains_deploys_and_serves(synthesized):
    # Dataset names may hold capitals (DATASET_NAME in dreambooth_shared/dataset_rules.py), and so
    # the SageMaker names made from them. SageMaker writes its ARNs in lower case; the deploy role's
    # tag conditions (aws:ResourceTag) read the resource's own tags. Planted defect caught: the
    # harness looking the tags up in moto by the lower-cased ARN (no tags found) -> AccessDenied at
    # the first conditioned call and the model never goes live.
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(endpoint_s=1)) as h:
        model_id = h.train_and_deploy("MyDog", PHOTOS)
        assert model_id.startswith("MyDog-")
        assert [r.status for r in h.training_runs()] == ["SUCCEEDED"]
        assert [r.status for r in h.deploy_runs()] == ["SUCCEEDED"]
        assert h.models()[model_id]["status"] == "live" and h.live_pointer()["liveModelId"] == model_id
        tags = h.client("sagemaker").list_tags(
            ResourceArn=h.client("sagemaker").describe_endpoint_config(EndpointConfigName=model_id)["EndpointConfigArn"]
        )["Tags"]
        assert tags, "the endpoint config carries the stack's tag the conditions read"
        answer = h.api("POST", "/generations", {"prompt": "MyDog on a beach", "seed": 1, "wait": 20})
        assert answer.status == 200 and answer.json()["status"] == "succeeded", answer.text
        assert answer.json()["model_id"] == model_id


def test_path_style_presigned_urls_of_a_dotted_bucket_are_judged_like_virtual_hosted_ones(synthesized):
    # The URLs the API makes for a dotted (reused) bucket (tests/api/test_bucket_urls.py) reach the
    # harness's presigned-URL authorization: accepted while valid, refused once expired, as AWS does.
    import requests
    from botocore.config import Config

    from emulator.pipeline_harness import REGION

    dotted = "photos.example.com"
    with PipelineHarness(synthesized=synthesized) as h:
        h.client("s3").create_bucket(Bucket=dotted)
        h.client("s3").put_object(Bucket=dotted, Key="generated/g/0.jpg", Body=b"jpeg")
        with h.iam.acting_as(None):
            s3 = boto3.client(
                "s3",
                region_name=REGION,
                endpoint_url=f"https://s3.{REGION}.amazonaws.com",
                config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
            )
            url = s3.generate_presigned_url(
                "get_object", Params={"Bucket": dotted, "Key": "generated/g/0.jpg"}, ExpiresIn=60
            )
            post = s3.generate_presigned_post(
                Bucket=dotted, Key="uploads/dog/t/0.jpg", ExpiresIn=60, Conditions=[["content-length-range", 1, 100]]
            )
        assert url.startswith(f"https://s3.{REGION}.amazonaws.com/{dotted}/generated/g/0.jpg?")
        assert post["url"] == f"https://s3.{REGION}.amazonaws.com/{dotted}"
        fetched = requests.get(url, timeout=5)
        assert (fetched.status_code, fetched.content) == (200, b"jpeg")
        sent = requests.post(post["url"], data=post["fields"], files={"file": ("0.jpg", b"x" * 10)}, timeout=5)
        assert sent.status_code == 204, sent.text
        assert h.client("s3").get_object(Bucket=dotted, Key="uploads/dog/t/0.jpg")["Body"].read() == b"x" * 10
        # And once the URL's own expiry has passed, it is refused
        h.iam.expect_denials("presigned URL expired")
        h.clock.wait(61)
        assert requests.get(url, timeout=5).status_code == 403
