"""The pipeline within Step Functions' and Lambda's limits, on the harness (emulator/limits.py).

The harness fails any run whose state data passes 256 KiB, whose history passes 25,000 events or
whose Lambda payloads pass their limits, and lets `States.ALL` catch neither `States.Runtime`
nor `States.DataLimitExceeded`, as AWS does.
"""

from __future__ import annotations

import json

from dreambooth_shared.contract import DEPLOY_LOCK_ID
from emulator import PipelineHarness, SageMakerSimulator
from emulator.limits import STATE_LIMIT_BYTES
from stacks.serving.workflow import HistoryBudget
from tests import template_find as find
from tests.pipeline.conftest import dog_photos, png_bytes

DOG_PHOTOS = dog_photos()
LONGEST_PROMPT = ("a photo of Doppler, a small brown and white dog with long floppy ears " * 5)[:300].strip()


def largest_dataset() -> dict[str, bytes]:
    """500 files (the most a snapshot takes): 100 images (datasetMaxImages) with 200-character
    names, 399 other files with names up to S3's 1,024-byte key limit, and dataset_info.json with
    300-character prompts (the longest allowed)."""
    prefix_len = len("datasets/largest/")
    files = {f"{i:03d}-{'p' * 196}.png": png_bytes(256, 256, (i, 100, 200)) for i in range(100)}
    files |= {f"{i:03d}-{'n' * (1024 - prefix_len - 8)}.txt": b"notes" for i in range(399)}
    files["dataset_info.json"] = json.dumps(
        {"instance_prompt": LONGEST_PROMPT, "class_prompt": LONGEST_PROMPT.replace("Doppler, ", "")}
    ).encode()
    assert len(files) == 500 and max(len(prefix_len * "x" + name) for name in files) == 1024
    return files


def test_the_largest_allowed_dataset_trains_and_deploys_within_every_limit(synthesized):
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator()) as h:
        model_id = h.train_and_deploy("largest", largest_dataset(), timeout_s=240)

        (train,) = h.training_runs()
        (deploy,) = h.deploy_runs()
        assert (train.status, deploy.status) == ("SUCCEEDED", "SUCCEEDED")
        model = h.models()[model_id]
        assert model["status"] == "live" and model["imageCount"] == 100
        assert model["instancePrompt"] == LONGEST_PROMPT
        # The 399 skipped files are summarized in the registry; the full list is in the report.
        assert "and " in model["skippedFiles"] and "more (all of them in s3://" in model["skippedFiles"]
        assert len(model["skippedFiles"]) <= 1000
        report_key = model["skippedFiles"].rsplit("s3://", 1)[1].rstrip(")").split("/", 1)[1]
        report = json.loads(h.client("s3").get_object(Bucket=h.bucket, Key=report_key)["Body"].read())
        assert len(report["warnings"]) == 399 and len(report["images"]) == 100
        # The harness checked every state of both histories (it fails the test otherwise).
        size, execution, state = h.limits.largest_state
        assert size < STATE_LIMIT_BYTES, (execution, state)
        print(f"largest state: {size} bytes ({execution} {state}); most events: {h.limits.most_events}")


def test_a_lock_released_between_a_failed_acquire_and_its_read_is_acquired(synthesized, monkeypatch):
    from moto.dynamodb.exceptions import ConditionalCheckFailed
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.update_item
    released = []

    def update_item(backend, *args, **kwargs):
        try:
            return original(backend, *args, **kwargs)
        except ConditionalCheckFailed:
            table, key = args[0], args[1]  # how moto's DynamoDB responses call it
            if not released and key == {"pk": {"S": DEPLOY_LOCK_ID}}:
                # The holder releases the lock right after this acquire failed (REMOVE owner).
                backend.get_item(table, key).attrs.pop("owner")
                released.append(table)
            raise

    monkeypatch.setattr(DynamoDBBackend, "update_item", update_item)
    with PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator()) as h:
        # Given a lock held by another deployment when this one tries to take it...
        h.client("dynamodb").put_item(
            TableName=h.state_table,
            Item={
                "pk": {"S": DEPLOY_LOCK_ID},
                "modelId": {"S": "other"},
                "owner": {
                    "S": f"arn:aws:states:us-east-1:123456789012:execution:{h.synthesized.stack_name}-deploy:other"
                },
            },
        )

        model_id = h.train_and_deploy("doppler", DOG_PHOTOS)

        # ...released before it read the lock: it acquires the lock and goes live.
        assert released
        run = h.deploy_runs()[-1]
        assert run.status == "SUCCEEDED", (run.error, run.cause)
        assert run.entered_states[:5] == ["StartDeployment", "AcquireLock", "ReadLock", "IsLockHeld", "CountLockRetry"]
        assert h.models()[model_id]["status"] == "live"


def events_per_turn(run, first_state: str) -> list[int]:
    """History events between consecutive entries into `first_state` (one turn of its loop)."""
    entries = [i for i, e in enumerate(run.events) if e.get("stateEnteredEventDetails", {}).get("name") == first_state]
    return [b - a for a, b in zip(entries, entries[1:])]


def test_the_history_budget_covers_what_moto_writes_per_loop_turn(synthesized):
    from emulator.limits import ServiceLimits

    # Given two deployments at once, the endpoint slow and its events lost (so the first polls
    # every second while the second waits for the lock)...
    simulator = SageMakerSimulator(endpoint_s=14)
    with PipelineHarness(
        synthesized=synthesized, simulator=simulator, deliver_endpoint_events=False, limits=ServiceLimits()
    ) as h:
        for (dog, body), cat in zip(DOG_PHOTOS.items(), ("c0.png", "c1.png", "c2.png")):
            h.upload(f"datasets/doppler/{dog}", body)
            h.upload(f"datasets/whiskers/{cat}", png_bytes(600, 600))
        h.wait_until_idle(150)

        runs = h.deploy_runs()
        assert [r.status for r in runs] == ["SUCCEEDED", "SUCCEEDED"]
        polls = [n for r in runs for n in events_per_turn(r, "WaitForEndpoint")]
        locks = [n for r in runs for n in events_per_turn(r, "AcquireLock")]
        assert polls and locks
        resources = h.synthesized.template["Resources"]
        deploy = resources[find.deploy_machine(resources)]
        budget = HistoryBudget.of(json.loads(h.resolve(deploy["Properties"]["DefinitionString"])))
        print(
            f"moto: {max(polls)} events per poll turn (budget {budget.poll_turn}), {max(locks)} per lock turn "
            f"(budget {budget.lock_turn})"
        )
        assert max(polls) <= budget.poll_turn and max(locks) <= budget.lock_turn
