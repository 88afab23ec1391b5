"""Idle shutdown, wake-up and autoscaling on the emulator: the synthesized state machines and the
real idle-check and scaling handlers (tests/harness). The schedule is fired by hand with the
`time` EventBridge would put in it, e.g. two hours after the deployment."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.api.adapter import ApiGatewayAdapter
from tests.api.lambda_loader import load
from tests.harness import PipelineHarness, SageMakerSimulator, synthesize
from tests.pipeline.conftest import jpeg_bytes

DOG_PHOTOS = {f"dog{i}.jpg": jpeg_bytes(512 + i, 512) for i in range(3)}
CAT_PHOTOS = {f"cat{i}.jpg": jpeg_bytes(600, 600 + i) for i in range(3)}
CONTEXT = {"quietWindowSeconds": 2, "endpointPollSeconds": 1, "idleMinutes": 30,
           "endpointMinInstances": 1, "endpointMaxInstances": 3, "endpointTargetInvocationsPerInstance": 6}
VARIANT = "AllTraffic"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    return synthesize(CONTEXT, outdir=tmp_path_factory.mktemp("assembly"))


def harness(synthesized, **simulator) -> PipelineHarness:
    return PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(**simulator))


def fire_idle_check(h: PipelineHarness, after: timedelta) -> dict:
    """The scheduled event, `after` from now, delivered to the schedule rule's target."""
    (rule,) = [r for r in h.synthesized.resources("AWS::Events::Rule").values()
               if "ScheduleExpression" in r["Properties"]]
    assert rule["Properties"]["ScheduleExpression"] == "rate(5 minutes)"
    (target,) = rule["Properties"]["Targets"]
    function = h.resolve(target["Arn"]).rsplit(":", 1)[1]
    moment = (datetime.now(timezone.utc) + after).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {"version": "0", "id": "sched", "detail-type": "Scheduled Event", "source": "aws.events",
             "account": "123456789012", "time": moment, "region": "us-east-1", "resources": [], "detail": {}}
    response = h.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
    body = json.loads(response["Payload"].read())
    assert not response.get("FunctionError"), body
    return body


def endpoint_exists(h: PipelineHarness) -> bool:
    return any(e["EndpointName"] == h.endpoint_name for e in h.client("sagemaker").list_endpoints()["Endpoints"])


def scalable_targets(h: PipelineHarness) -> list[dict]:
    return h.client("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")[
        "ScalableTargets"]


def start_wake(h: PipelineHarness, model_id: str, attempt: int = 1) -> str:
    """What the API does for the first request that finds the endpoint asleep (lambda/api/wake.py)."""
    episode = h.live_pointer()["sleepEpisode"]
    h.client("dynamodb").update_item(
        TableName=h.registry_table, Key={"modelId": {"S": "__live__"}},
        UpdateExpression="SET endpointState = :w, wakeAttempt = :a",
        ExpressionAttributeValues={":w": {"S": "waking"}, ":a": {"N": str(attempt)}})
    return h.client("stepfunctions").start_execution(
        stateMachineArn=h.deploy_machine_arn, name=f"wake-{episode}-{attempt}",
        input=json.dumps({"modelId": model_id, "wake": True}))["executionArn"]


def test_deployment_registers_autoscaling_and_creates_with_the_minimum(synthesized):
    with harness(synthesized) as h:
        model_id = h.train_and_deploy("doppler", DOG_PHOTOS)
        config = h.client("sagemaker").describe_endpoint_config(EndpointConfigName=model_id)
        assert config["ProductionVariants"][0]["InitialInstanceCount"] == 1
        (target,) = scalable_targets(h)
        assert target["ResourceId"] == f"endpoint/{h.endpoint_name}/variant/{VARIANT}"
        assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)
        (policy,) = h.client("application-autoscaling").describe_scaling_policies(
            ServiceNamespace="sagemaker")["ScalingPolicies"]
        tracking = policy["TargetTrackingScalingPolicyConfiguration"]
        assert tracking["TargetValue"] == 6.0
        assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == \
            "SageMakerVariantInvocationsPerInstance"


def test_idle_detection_deletes_only_the_endpoint(synthesized):
    with harness(synthesized) as h:
        model_id = h.train_and_deploy("doppler", DOG_PHOTOS)
        # Used recently: the check leaves it alone
        assert fire_idle_check(h, timedelta(minutes=10))["action"] == "in_use"
        assert endpoint_exists(h)
        # When the schedule fires after more than idleMinutes without use
        decision = fire_idle_check(h, timedelta(hours=2))
        # Then the endpoint (and its autoscaling) is gone, the model and its config are kept
        assert decision["action"] == "slept"
        assert not endpoint_exists(h) and scalable_targets(h) == []
        sagemaker = h.client("sagemaker")
        assert sagemaker.describe_model(ModelName=model_id)["ModelName"] == model_id
        assert sagemaker.describe_endpoint_config(EndpointConfigName=model_id)["EndpointConfigName"] == model_id
        # And the registry says asleep, the model itself still live
        pointer = h.live_pointer()
        assert pointer["endpointState"] == "asleep" and pointer["liveModelId"] == model_id
        assert pointer["endpointConfigName"] == model_id and pointer["sleepEpisode"]
        assert h.models()[model_id]["status"] == "live"
        assert h.notifications()[-1]["subject"] == "DreamBooth: endpoint asleep"
        # The deployment lock is free again, and a second check changes nothing
        lock = h.client("dynamodb").get_item(TableName=h.state_table, Key={"pk": {"S": "deploy-lock"}}).get("Item", {})
        assert "owner" not in lock
        assert fire_idle_check(h, timedelta(hours=3))["action"] == "asleep"
        assert h.simulator.count("delete_endpoint") == 1


def test_recent_invocations_keep_the_endpoint_awake(synthesized):
    with harness(synthesized) as h:
        h.train_and_deploy("doppler", DOG_PHOTOS)
        later = datetime.now(timezone.utc) + timedelta(hours=2)
        h.client("cloudwatch").put_metric_data(Namespace="AWS/SageMaker", MetricData=[{
            "MetricName": "Invocations", "Value": 3, "Timestamp": later - timedelta(minutes=12),
            "Dimensions": [{"Name": "EndpointName", "Value": h.endpoint_name}, {"Name": "VariantName", "Value": VARIANT}],
        }])
        decision = fire_idle_check(h, timedelta(hours=2))
        assert decision["action"] == "in_use" and endpoint_exists(h)


def test_no_sleep_while_the_endpoint_updates_or_a_deployment_runs(synthesized):
    with harness(synthesized, endpoint_s=3) as h:
        h.train_and_deploy("doppler", DOG_PHOTOS)
        # Given a second model being deployed (UpdateEndpoint takes 3 s)
        h.upload_dataset("cat", CAT_PHOTOS)
        deadline = time.monotonic() + 30
        while h.simulator.count("update_endpoint") == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        # When the schedule fires with the endpoint idle for hours
        decision = fire_idle_check(h, timedelta(hours=2))
        # Then nothing is deleted, and the new model goes live
        assert decision["action"] in ("busy", "deploying")
        h.wait_until_idle(60)
        assert endpoint_exists(h) and h.simulator.count("delete_endpoint") == 0
        assert "endpointState" not in h.live_pointer()


def test_the_woken_endpoint_serves_the_same_model(synthesized):
    with harness(synthesized, endpoint_s=1) as h:
        model_id = h.train_and_deploy("doppler", DOG_PHOTOS)
        assert fire_idle_check(h, timedelta(hours=2))["action"] == "slept"
        # When the wake-up runs (as the API starts it) -- twice asked, once run
        start_wake(h, model_id)
        with pytest.raises(h.client("stepfunctions").exceptions.ExecutionAlreadyExists):
            h.client("stepfunctions").start_execution(
                stateMachineArn=h.deploy_machine_arn, name=f"wake-{h.live_pointer()['sleepEpisode']}-1",
                input=json.dumps({"modelId": model_id, "wake": True, "again": True}))
        h.wait_until_idle(60)
        # Then the endpoint is back with the same config, the registry live again
        endpoint = h.client("sagemaker").describe_endpoint(EndpointName=h.endpoint_name)
        assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", model_id)
        pointer = h.live_pointer()
        assert pointer["liveModelId"] == model_id and "endpointState" not in pointer
        assert h.models()[model_id]["status"] == "live"
        wake_run = h.deploy_runs()[-1]
        assert wake_run.status == "SUCCEEDED" and "MarkDeploying" not in wake_run.entered_states
        assert "CreateModel" not in wake_run.entered_states and "CreateEndpoint" in wake_run.entered_states
        assert h.simulator.count("create_endpoint") == 2
        assert len(scalable_targets(h)) == 1
        assert h.notifications()[-1]["subject"] == "DreamBooth: endpoint awake again"
        # And it can sleep again later (its wake-up counts as a use until then)
        assert fire_idle_check(h, timedelta(minutes=20))["action"] == "in_use"


def test_a_failed_wake_up_is_recorded_and_a_later_one_succeeds(synthesized):
    with harness(synthesized, endpoint_s=1) as h:
        model_id = h.train_and_deploy("doppler", DOG_PHOTOS)
        assert fire_idle_check(h, timedelta(hours=2))["action"] == "slept"
        h.simulator.fail_endpoint_create = "CapacityError: insufficient ml.g4dn.2xlarge capacity"
        start_wake(h, model_id)
        h.wait_until_idle(60)
        pointer = h.live_pointer()
        assert pointer["endpointState"] == "wake_failed"
        assert "CapacityError" in pointer["wakeFailureReason"]
        assert h.models()[model_id]["status"] == "live"  # the model did not fail: its endpoint did
        assert h.notifications()[-1]["subject"] == "DreamBooth: endpoint could not be woken up"
        # A later request tries again: the failed endpoint is replaced
        h.simulator.fail_endpoint_create = None
        start_wake(h, model_id, attempt=2)
        h.wait_until_idle(60)
        assert "endpointState" not in h.live_pointer()
        assert h.client("sagemaker").describe_endpoint(EndpointName=h.endpoint_name)["EndpointStatus"] == "InService"


def test_a_wake_up_after_a_deployment_brought_the_endpoint_back_does_nothing(synthesized):
    with harness(synthesized, endpoint_s=1) as h:
        model_id = h.train_and_deploy("doppler", DOG_PHOTOS)
        assert fire_idle_check(h, timedelta(hours=2))["action"] == "slept"
        # A new model deployed meanwhile re-creates the endpoint (the pointer loses its sleep state)
        cat_id = h.train_and_deploy("cat", CAT_PHOTOS)
        assert h.live_pointer()["liveModelId"] == cat_id and "endpointState" not in h.live_pointer()
        h.client("stepfunctions").start_execution(
            stateMachineArn=h.deploy_machine_arn, name="wake-stale-1",
            input=json.dumps({"modelId": model_id, "wake": True}))
        h.wait_until_idle(60)
        assert "AlreadyAwake" in h.deploy_runs()[-1].entered_states
        assert h.client("sagemaker").describe_endpoint(EndpointName=h.endpoint_name)["EndpointConfigName"] == cat_id


def test_a_deployment_waits_for_the_idle_check_holding_the_lock(synthesized):
    with harness(synthesized, endpoint_s=1) as h:
        model_id = h.train_and_deploy("doppler", DOG_PHOTOS)
        until = (datetime.now(timezone.utc) + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        h.client("dynamodb").put_item(TableName=h.state_table, Item={
            "pk": {"S": "deploy-lock"}, "owner": {"S": "idle-check:crashed"}, "idleUntil": {"S": until}})
        started = time.monotonic()
        h.client("stepfunctions").start_execution(stateMachineArn=h.deploy_machine_arn,
                                                  input=json.dumps({"modelId": model_id}))
        h.wait_until_idle(60)
        run = h.deploy_runs()[-1]
        assert run.status == "SUCCEEDED"
        assert "IsIdleCheckLockFresh" in run.entered_states and "TakeOverLock" in run.entered_states
        assert time.monotonic() - started >= 2  # waited for idleUntil, then took the lock over


def test_idle_minutes_zero_creates_no_idle_check(tmp_path):
    assembly = synthesize({**CONTEXT, "idleMinutes": 0}, outdir=tmp_path)
    rules = assembly.resources("AWS::Events::Rule").values()
    assert not [r for r in rules if "ScheduleExpression" in r["Properties"]]
    handlers = [f["Properties"]["Handler"] for f in assembly.resources("AWS::Lambda::Function").values()]
    assert "idle_tasks.check_idle" not in handlers and "idle_tasks.scaling" in handlers


def api_containers(h: PipelineHarness, count: int) -> list[ApiGatewayAdapter]:
    """`count` separate containers of the API function (fresh module copies), as Lambda runs
    concurrent requests: nothing is shared between them but AWS (moto)."""
    spec = h.api_function

    def container() -> ApiGatewayAdapter:
        with h.iam.acting_as(spec.role):
            handler = load(spec.code_dir, "handler", spec.environment).lambda_handler

        def as_the_function(event, context):  # its AWS calls signed as the API function's role
            with h.iam.acting_as(spec.role):
                return handler(event, context)

        return ApiGatewayAdapter(as_the_function)

    return [container() for _ in range(count)]


def test_requests_to_a_sleeping_endpoint_wake_it_once_and_it_serves_the_same_model(synthesized):
    with harness(synthesized, endpoint_s=1.5) as h:
        model_id = h.train_and_deploy("doppler", DOG_PHOTOS)
        before = h.api("POST", "/generations", {"prompt": "Doppler on the beach", "seed": 7, "wait": 10})
        assert before.status == 200 and before.json()["model_id"] == model_id
        assert fire_idle_check(h, timedelta(hours=2))["action"] == "slept"
        assert h.api("GET", "/status").json()["endpoint"]["state"] == "asleep"

        # When ten requests arrive at once, each in its own API container
        containers = api_containers(h, 10)
        barrier = threading.Barrier(len(containers))
        answers: list = [None] * len(containers)

        def request(index: int) -> None:
            barrier.wait()
            answers[index] = containers[index].call("POST", "/generations", {"prompt": "Doppler in the snow"})

        threads = [threading.Thread(target=request, args=(i,)) for i in range(len(containers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        # Then all are told the endpoint is waking up, with Retry-After, and nothing is generated
        for answer in answers:
            assert answer.status == 503, answer.text
            assert answer.headers["Retry-After"] == "60" and answer.json()["error"]["code"] == "EndpointWaking"
        assert sum("is now waking up" in a.json()["error"]["message"] for a in answers) == 1
        assert h.api("GET", "/status").json()["endpoint"]["state"] == "waking"
        # And exactly one wake-up ran
        h.wait_until_idle(60)
        wakes = [run for run in h.deploy_runs() if run.input.get("wake")]
        assert len(wakes) == 1 and wakes[0].status == "SUCCEEDED"
        assert wakes[0].input["modelId"] == model_id and wakes[0].name.startswith("wake-")
        assert h.simulator.count("create_endpoint") == 2

        # The woken endpoint serves the same model
        status = h.api("GET", "/status").json()
        assert status["endpoint"]["state"] == "in_service" and status["live_model"]["model_id"] == model_id
        after = h.api("POST", "/generations", {"prompt": "Doppler in the snow", "seed": 9, "wait": 10})
        assert after.status == 200, after.text
        assert after.json()["status"] == "succeeded" and after.json()["model_id"] == model_id
        served = [d for _, e, d in h.simulator.timeline if e == "invoke-endpoint"]
        assert served[-1].startswith(f"{h.endpoint_name} model={model_id} seed=9")
