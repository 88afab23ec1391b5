"""A real-time endpoint config never serves the asynchronous endpoint: SageMaker refuses an
UpdateEndpoint between a real-time and an asynchronous config ("AsyncInferenceConfig cannot be
removed"), and so does the simulator; the deploy machine reuses a recorded config only if it is
asynchronous (one an older, real-time version of the stack made is made again)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from stacks.config import STACK_TAG_KEY
from tests.emulator.test_autoscaling_paths import MORE_PHOTOS, harness, synthesized  # noqa: F401 (fixture)
from tests.emulator.test_harness_api import PHOTOS, finished


def real_time_copy(h, config_name: str, new_name: str, *, replace: bool = False) -> None:
    """`new_name`: the same variant as `config_name`, without AsyncInferenceConfig, tagged as the
    stack's (with `replace`, `config_name` is deleted first: `new_name` is then the same name)."""
    sagemaker = h.client("sagemaker")
    variant = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"][0]
    if replace:
        sagemaker.delete_endpoint_config(EndpointConfigName=config_name)
    sagemaker.create_endpoint_config(
        EndpointConfigName=new_name,
        Tags=[{"Key": STACK_TAG_KEY, "Value": h.synthesized.stack_name}],
        ProductionVariants=[
            {k: variant[k] for k in ("VariantName", "ModelName", "InstanceType", "InitialInstanceCount")}
        ],
    )


def test_sagemaker_refuses_to_switch_an_endpoint_between_real_time_and_asynchronous(synthesized):
    with harness(synthesized) as h:
        live = h.train_and_deploy("doppler", PHOTOS)
        real_time_copy(h, live, "real-time")
        sagemaker = h.client("sagemaker")
        with pytest.raises(ClientError) as refused:
            sagemaker.update_endpoint(EndpointName=h.endpoint_name, EndpointConfigName="real-time")
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        assert "AsyncInferenceConfig cannot be removed" in refused.value.response["Error"]["Message"]
        # And the other way round: a real-time endpoint cannot become an asynchronous one
        sagemaker.delete_endpoint(EndpointName=h.endpoint_name)
        sagemaker.create_endpoint(EndpointName=h.endpoint_name, EndpointConfigName="real-time")
        h.wait_until_idle(30)
        with pytest.raises(ClientError) as refused:
            sagemaker.update_endpoint(EndpointName=h.endpoint_name, EndpointConfigName=live)
        assert "AsyncInferenceConfig cannot be added" in refused.value.response["Error"]["Message"]


def test_a_recorded_real_time_config_is_made_again_asynchronous_before_it_serves(synthesized):
    with harness(synthesized) as h:
        old = h.train_and_deploy("doppler", PHOTOS)
        h.train_and_deploy("doppler", MORE_PHOTOS)
        # Given the retired model's recorded config is a real-time one (as an older version of the stack made it)
        sagemaker = h.client("sagemaker")
        real_time_copy(h, old, old, replace=True)
        assert "AsyncInferenceConfig" not in sagemaker.describe_endpoint_config(EndpointConfigName=old)
        # When it is put back live
        h.client("stepfunctions").start_execution(
            stateMachineArn=h.deploy_machine_arn, input=json.dumps({"modelId": old})
        )
        h.wait_until_idle(60)
        deploy = h.deploy_runs()[-1]
        assert deploy.status == "SUCCEEDED", deploy.cause
        # Then its config was made again, asynchronous, under its name, and serves it
        assert "DeleteRealTimeConfig" in deploy.entered_states and "CreateModel" not in deploy.entered_states
        config = sagemaker.describe_endpoint_config(EndpointConfigName=old)
        assert config["AsyncInferenceConfig"]["OutputConfig"]["NotificationConfig"]
        assert config["ProductionVariants"][0]["ModelName"] == old
        assert sagemaker.describe_endpoint(EndpointName=h.endpoint_name)["EndpointConfigName"] == old
        assert h.live_pointer()["liveModelId"] == old
        answer = h.api("POST", "/generations", {"prompt": "Doppler again", "seed": 9})
        assert finished(h, answer.json()["id"], 60)["status"] == "succeeded"


def test_an_endpoint_still_running_a_real_time_config_is_made_again_asynchronous(synthesized):
    with harness(synthesized) as h:
        live = h.train_and_deploy("doppler", PHOTOS)
        # Given the endpoint as an older, real-time version of the stack left it: running the live
        # model's config, real-time, under the model's name
        sagemaker = h.client("sagemaker")
        sagemaker.delete_endpoint(EndpointName=h.endpoint_name)
        real_time_copy(h, live, live, replace=True)
        sagemaker.create_endpoint(EndpointName=h.endpoint_name, EndpointConfigName=live)
        h.wait_until_idle(30)
        assert "AsyncInferenceConfig" not in sagemaker.describe_endpoint(EndpointName=h.endpoint_name)
        # When the live model is deployed again (its config made again asynchronous under the same name)
        h.client("stepfunctions").start_execution(
            stateMachineArn=h.deploy_machine_arn, input=json.dumps({"modelId": live})
        )
        h.wait_until_idle(90)
        deploy = h.deploy_runs()[-1]
        assert deploy.status == "SUCCEEDED", deploy.cause
        # Then the real-time endpoint was deleted and created again: it runs the asynchronous config
        assert {"DeleteRealTimeConfig", "DeleteRealTimeEndpoint", "CreateEndpoint"} <= set(deploy.entered_states)
        described = sagemaker.describe_endpoint(EndpointName=h.endpoint_name)
        assert described["EndpointConfigName"] == live and "AsyncInferenceConfig" in described
        answer = h.api("POST", "/generations", {"prompt": "Doppler, asynchronous again", "seed": 10})
        assert finished(h, answer.json()["id"], 60)["status"] == "succeeded"
