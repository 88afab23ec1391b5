"""The endpoint's autoscaling survives every way a deployment ends (SageMaker's "Update endpoints that
use auto scaling"): removed before an UpdateEndpoint only when the instance type changes, and then
registered again after success, a refused update, a rolled-back one, one too slow to finish and a
caught error; the dispatcher's periodic check registers it on an InService endpoint that lost it.
After each, the endpoint still starts from zero instances on a request and goes back to zero.

The simulator refuses UpdateEndpoint as SageMaker does while the variant is a scalable target and
its instance type changes (emulator/sagemaker_sim.py), so a deployment that kept the
registration for such an update fails here as in AWS.
"""

from __future__ import annotations

import json

import pytest
from moto.sagemaker import models as sm_models

from dreambooth_shared.contract import SCALABLE_DIMENSION, VARIANT_NAME, ApiEnv
from emulator import PipelineHarness, SageMakerSimulator, synthesize
from emulator.account import ACCOUNT, REGION
from tests import template_find as find
from tests.emulator.test_harness_api import PHOTOS, events, finished, instances, wait_for
from tests.pipeline.conftest import jpeg_bytes

# Polls a minute apart (a parked wait wakes on the endpoint's event before): a deployment gives up
# after five checks, so the too-slow path costs few history events.
CONTEXT = {"quietWindowSeconds": 2, "endpointPollSeconds": 60, "endpointMaxWaitMinutes": 5, "idleMinutes": 1}
OTHER_INSTANCE_TYPE = "ml.g5.2xlarge"
MORE_PHOTOS = {"dog9.jpg": jpeg_bytes(700, 700)}


@pytest.fixture(scope="module")
def synthesized():
    return synthesize(CONTEXT)


def harness(synthesized, **options) -> PipelineHarness:
    grants = options.pop("remove_grants", None)
    return PipelineHarness(
        synthesized=synthesized,
        remove_grants=grants,
        simulator=SageMakerSimulator(endpoint_s=2, scale_out_s=1, scale_in_s=2, inference_s=0.05, **options),
    )


def live_config_on_another_instance_type(h: PipelineHarness, config_name: str) -> None:
    """The endpoint's config as a stack with another `instanceType` made it: the next model's config
    changes the variant's instance type, which SageMaker refuses while the variant is a scalable target."""
    config = sm_models.sagemaker_backends[ACCOUNT][REGION].endpoint_configs[config_name]
    config.production_variants[0]["InstanceType"] = OTHER_INSTANCE_TYPE


def registered(h: PipelineHarness) -> bool:
    return h.simulator.scalable_target(h.endpoint_name) is not None


def starts_from_zero_and_scales_back_to_zero(h: PipelineHarness, seed: int) -> None:
    # Given the endpoint at zero instances after its idle time
    wait_for(h, lambda: instances(h) == 0, 60, "scale-in to zero")
    started = len(events(h, "async-instance-started"))
    # When a generation arrives, an instance starts (scale-out from zero) and serves it
    answer = h.api("POST", "/generations", {"prompt": "Doppler after the deployment", "seed": seed})
    assert answer.status == 202, answer.text
    assert finished(h, answer.json()["id"], 60)["status"] == "succeeded"
    assert len(events(h, "async-instance-started")) == started + 1
    # Then, without work, the endpoint goes back to zero instances
    wait_for(h, lambda: instances(h) == 0, 60, "back to zero after the request")


def test_a_model_only_update_keeps_the_registration_throughout(synthesized):
    with harness(synthesized) as h:
        h.train_and_deploy("doppler", PHOTOS)
        assert registered(h)
        during = []
        h.when_entering("WaitForEndpoint", lambda: during.append(registered(h)))
        # When the next model (same instance type) is put on the endpoint
        second = h.train_and_deploy("doppler", MORE_PHOTOS)
        assert h.deploy_runs()[-1].status == "SUCCEEDED" and h.live_pointer()["liveModelId"] == second
        # Then its autoscaling stayed registered while the endpoint updated (AWS allows a model change)
        assert during == [True]
        assert "endpoint-update-refused" not in [e for _, e, _ in h.simulator.timeline]
        starts_from_zero_and_scales_back_to_zero(h, 1)


def test_an_instance_type_change_deregisters_first_and_registers_again(synthesized):
    with harness(synthesized) as h:
        first = h.train_and_deploy("doppler", PHOTOS)
        live_config_on_another_instance_type(h, first)
        during = []
        h.when_entering("WaitForEndpoint", lambda: during.append(registered(h)))
        second = h.train_and_deploy("doppler", MORE_PHOTOS)
        # The update was taken (SageMaker refuses it while the variant is a scalable target)
        assert h.deploy_runs()[-1].status == "SUCCEEDED" and h.live_pointer()["liveModelId"] == second
        assert during == [False] and registered(h)
        starts_from_zero_and_scales_back_to_zero(h, 2)


@pytest.mark.parametrize("path", ["refused", "rolled back", "caught error"])
def test_a_failed_update_registers_the_autoscaling_of_the_config_still_serving(synthesized, path):
    with harness(synthesized) as h:
        live = h.train_and_deploy("doppler", PHOTOS)
        live_config_on_another_instance_type(h, live)
        if path == "refused":
            h.simulator.refuse_endpoint_update = "Cannot update endpoint: the account's instance quota is reached"
        elif path == "rolled back":
            h.simulator.fail_endpoint_update = "The primary container did not pass the ping health check."
        else:
            # the new config deleted out of band as the update is sent: AccessDenied (it has no stack
            # tag any more), caught like any error of the run
            def delete_new_config() -> None:
                sagemaker = h.client("sagemaker")
                for config in sagemaker.list_endpoint_configs()["EndpointConfigs"]:
                    if config["EndpointConfigName"] != live:
                        sagemaker.delete_endpoint_config(EndpointConfigName=config["EndpointConfigName"])

            h.when_entering("UpdateEndpoint", delete_new_config)
            h.iam.expect_denials("sagemaker:UpdateEndpoint")
        # When the deployment of the next model fails after it removed the autoscaling
        h.train_and_deploy("doppler", MORE_PHOTOS)
        deploy = h.deploy_runs()[-1]
        assert deploy.status == "FAILED" and deploy.error == "DeploymentFailed"
        assert "RestoreAutoscaling" in deploy.entered_states
        (failed,) = [m for m in h.models().values() if m["status"] == "failed"]
        assert {"refused": "instance quota", "rolled back": "ping health check", "caught error": "AccessDenied"}[
            path
        ] in failed["failureReason"]
        # Then the endpoint still serves the live model's config, and its autoscaling is registered again
        described = h.client("sagemaker").describe_endpoint(EndpointName=h.endpoint_name)
        assert described["EndpointConfigName"] == live and h.live_pointer()["liveModelId"] == live
        assert registered(h)
        starts_from_zero_and_scales_back_to_zero(h, 3)


def test_an_update_too_slow_to_finish_gets_its_autoscaling_from_the_periodic_check(synthesized):
    with harness(synthesized) as h:
        live = h.train_and_deploy("doppler", PHOTOS)
        live_config_on_another_instance_type(h, live)
        # Given an update that outlasts the deployment's wait (five checks a minute apart)
        h.simulator.endpoint_s = 400
        at_the_end = []
        h.when_entering(
            "IsTheLiveModel",
            lambda: at_the_end.append(
                (h.client("sagemaker").describe_endpoint(EndpointName=h.endpoint_name)["EndpointStatus"], registered(h))
            ),
        )
        h.train_and_deploy("doppler", MORE_PHOTOS, timeout_s=120)
        deploy = h.deploy_runs()[-1]
        assert deploy.status == "FAILED" and "EndpointTooSlow" in deploy.entered_states
        assert "RestoreAutoscaling" in deploy.entered_states
        # While still updating, nothing could be registered (AWS blocks autoscaling during an update)
        assert at_the_end == [("Updating", False)]
        # Then once the update ended, the dispatcher (run by the endpoint's state change) registered
        # the autoscaling of the config the endpoint now runs; its periodic check finds it there
        assert h.client("sagemaker").describe_endpoint(EndpointName=h.endpoint_name)["EndpointStatus"] == "InService"
        assert registered(h)
        assert h.run_schedule(h.dispatch_function)["autoscaling"] == "registered"
        starts_from_zero_and_scales_back_to_zero(h, 4)


def test_the_periodic_check_repairs_a_lost_registration_but_not_during_a_deployment(synthesized):
    with harness(synthesized) as h:
        h.train_and_deploy("doppler", PHOTOS)
        # Given an InService endpoint whose registration was lost (deregistered out of band)
        h.client("application-autoscaling").deregister_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=f"endpoint/{h.endpoint_name}/variant/{VARIANT_NAME}",
            ScalableDimension=SCALABLE_DIMENSION,
        )
        wait_for(h, lambda: instances(h) == 1, 5, "one instance")
        # When the periodic check runs, it registers it again
        assert h.run_schedule(h.dispatch_function)["autoscaling"] == "repaired"
        assert registered(h)
        assert h.run_schedule(h.dispatch_function)["autoscaling"] == "registered"
        starts_from_zero_and_scales_back_to_zero(h, 5)


def test_a_failed_endpoint_still_a_scalable_target_is_deleted_and_made_again(synthesized):
    with harness(synthesized) as h:
        h.train_and_deploy("doppler", PHOTOS)
        assert registered(h)
        # Given the endpoint Failed while its variant is still a scalable target
        sm_models.sagemaker_backends[ACCOUNT][REGION].endpoints[h.endpoint_name].endpoint_status = "Failed"
        # When the next model is deployed, the deployment deletes it (Application Auto Scaling
        # deregisters the variant with the deployment's permission) and creates it again
        second = h.train_and_deploy("doppler", MORE_PHOTOS)
        deploy = h.deploy_runs()[-1]
        assert deploy.status == "SUCCEEDED", deploy.cause
        assert "DeleteFailedEndpoint" in deploy.entered_states and h.live_pointer()["liveModelId"] == second
        assert registered(h)
        starts_from_zero_and_scales_back_to_zero(h, 7)


@pytest.mark.parametrize(
    "partial", ["alarms deleted, then the deregistration failed", "registration stopped after the target"]
)
def test_the_periodic_check_completes_a_half_done_registration(synthesized, partial):
    with harness(synthesized) as h:
        h.train_and_deploy("doppler", PHOTOS)
        # Given the variant still a scalable target, but without the alarms (deregister_scaling
        # deletes them first) or without its policies and alarms (register_scaling stopped after
        # RegisterScalableTarget): nothing would start an instance for a request at zero
        scaling, cloudwatch = h.client("application-autoscaling"), h.client("cloudwatch")
        target = {
            "ServiceNamespace": "sagemaker",
            "ResourceId": f"endpoint/{h.endpoint_name}/variant/{VARIANT_NAME}",
            "ScalableDimension": SCALABLE_DIMENSION,
        }
        if partial.startswith("registration"):
            for policy in scaling.describe_scaling_policies(
                **{k: v for k, v in target.items() if k != "ResourceId"}, ResourceId=target["ResourceId"]
            )["ScalingPolicies"]:
                scaling.delete_scaling_policy(PolicyName=policy["PolicyName"], **target)
        alarms = [
            a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNamePrefix=f"{h.endpoint_name}-")["MetricAlarms"]
        ]
        assert len(alarms) == 2
        cloudwatch.delete_alarms(AlarmNames=alarms)
        assert registered(h)
        # When the periodic check runs, it registers the whole of it again
        assert h.run_schedule(h.dispatch_function)["autoscaling"] == "repaired"
        assert h.run_schedule(h.dispatch_function)["autoscaling"] == "registered"
        starts_from_zero_and_scales_back_to_zero(h, 6)


def test_the_dispatcher_may_invoke_the_scaling_function_and_nothing_else(synthesized):
    resources = synthesized.template["Resources"]
    scaling, dispatch = (
        find.function(resources, "autoscaling_task.handler"),
        find.function(resources, "dispatch.lambda_handler"),
    )
    variables = resources[dispatch]["Properties"]["Environment"]["Variables"]
    assert variables[ApiEnv.SCALING_FUNCTION_NAME] == {"Ref": scaling}
    statements = [
        s
        for policy in find.of_type(resources, "AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"] == [{"Ref": find.role_of(resources, dispatch)}]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    (invoke,) = [s for s in statements if "lambda:InvokeFunction" in json.dumps(s["Action"])]
    assert invoke["Resource"] == {"Fn::GetAtt": [scaling, "Arn"]}  # not its versions (`:*`)
    (describe,) = [s for s in statements if "application-autoscaling" in json.dumps(s["Action"])]
    assert [a for a in describe["Action"] if not a.startswith("xray:")] == [
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:DescribeScalingPolicies",
    ]
    (alarms,) = [s for s in statements if "cloudwatch" in json.dumps(s["Action"])]
    assert alarms["Action"] == "cloudwatch:DescribeAlarms" and "-*" in json.dumps(alarms["Resource"])
