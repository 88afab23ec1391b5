"""The pipeline's settings in stacks/config.py: defaults and clear errors."""

from __future__ import annotations

import pytest

from stacks.config import ConfigError, ServingConfig, TrainingConfig


def ctx(values):
    return lambda key: values.get(key)


def test_defaults():
    training, serving = TrainingConfig.from_context(ctx({})), ServingConfig.from_context(ctx({}))
    assert (training.quiet_window_s, training.max_runtime_minutes, training.instance_type) == (
        120,
        120,
        "ml.g4dn.2xlarge",
    )
    assert (training.min_images, training.max_images, training.max_image_mb) == (3, 100, 20)
    assert training.default_instance_prompt == "a photo of sks {dataset}" and training.default_class_prompt == ""
    assert (serving.endpoint_poll_s, serving.endpoint_max_wait_minutes) == (180, 60)


def test_command_line_strings_are_accepted():
    training = TrainingConfig.from_context(
        ctx({"quietWindowSeconds": "45", "defaultClassPrompt": " a photo of a dog "})
    )
    assert training.quiet_window_s == 45 and training.default_class_prompt == "a photo of a dog"


@pytest.mark.parametrize(
    "key, value",
    [
        ("quietWindowSeconds", 0),
        ("quietWindowSeconds", "two minutes"),
        ("trainingMaxRuntimeMinutes", 5),
        ("datasetMinImages", 0),
        ("datasetMaxImageMegabytes", 500),
        ("defaultInstancePrompt", ""),
        ("defaultInstancePrompt", "x" * 301),
        ("trainingInstanceType", "ml.m5.large"),
    ],
)
def test_bad_training_values_name_the_key(key, value):
    with pytest.raises(ConfigError) as error:
        TrainingConfig.from_context(ctx({key: value}))
    assert error.value.key == key and key in str(error.value)


def test_max_images_below_min_images_is_refused():
    with pytest.raises(ConfigError, match="datasetMaxImages"):
        TrainingConfig.from_context(ctx({"datasetMinImages": 10, "datasetMaxImages": 5}))


@pytest.mark.parametrize(
    "key, value", [("endpointPollSeconds", 0), ("endpointPollSeconds", 301), ("endpointMaxWaitMinutes", 1)]
)
def test_bad_serving_values_name_the_key(key, value):
    with pytest.raises(ConfigError) as error:
        ServingConfig.from_context(ctx({key: value}))
    assert error.value.key == key


def test_idle_and_scaling_defaults():
    serving = ServingConfig.from_context(ctx({}))
    assert (serving.idle_minutes, serving.min_instances, serving.max_instances) == (10, 0, 1)
    assert serving.target_backlog_per_instance == 2
    assert (serving.request_ttl_minutes, serving.invocation_timeout_s) == (360, 3600)


def test_idle_zero_keeps_one_instance_and_strings_are_accepted():
    serving = ServingConfig.from_context(
        ctx(
            {
                "idleMinutes": "0",
                "endpointMaxInstances": "5",
                "asyncRequestTtlMinutes": "30",
                "asyncInvocationTimeoutSeconds": "900",
            }
        )
    )
    assert (serving.idle_minutes, serving.min_instances, serving.max_instances) == (0, 1, 5)
    assert (serving.request_ttl_minutes, serving.invocation_timeout_s) == (30, 900)


@pytest.mark.parametrize(
    "key, value",
    [
        ("idleMinutes", -1),
        ("idleMinutes", 24 * 60 + 1),
        ("idleMinutes", "an hour"),
        ("endpointMaxInstances", 0),
        ("endpointMaxInstances", 21),
        ("endpointTargetBacklogPerInstance", 0),
        ("asyncRequestTtlMinutes", 0),
        ("asyncRequestTtlMinutes", 361),
        ("asyncInvocationTimeoutSeconds", 0),
        ("asyncInvocationTimeoutSeconds", 3601),
    ],
)
def test_bad_idle_and_scaling_values_name_the_key(key, value):
    with pytest.raises(ConfigError) as error:
        ServingConfig.from_context(ctx({key: value}))
    assert error.value.key == key and key in str(error.value)


def synth_error(context):
    from stacks.application import build_app

    try:
        build_app(context, environ={})
    except ConfigError as error:
        return str(error)
    return None


@pytest.mark.parametrize("poll, wait", [(2, 60), (1, 240), (10, 240)])
def test_endpoint_settings_whose_deployment_would_pass_25000_history_events_are_refused_at_synth(poll, wait):
    # Given settings each allowed on its own, whose longest deployment (the state graph's loops
    # at their bounds) would write more history events than an execution may...
    message = synth_error({"endpointPollSeconds": poll, "endpointMaxWaitMinutes": wait})

    # ...synth stops with a message naming both keys, the count and a way out.
    assert message is not None
    assert "'endpointPollSeconds'" in message and f"endpointMaxWaitMinutes={wait}" in message
    assert "history events" in message and "endpointPollSeconds of at least" in message


@pytest.mark.parametrize("poll, wait", [(180, 60), (180, 240), (60, 240), (7, 60), (1, 5)])
def test_endpoint_settings_within_the_history_budget_synthesize(poll, wait):
    assert synth_error({"endpointPollSeconds": poll, "endpointMaxWaitMinutes": wait}) is None


def test_the_suggested_settings_fit():
    message = synth_error({"endpointPollSeconds": 2, "endpointMaxWaitMinutes": 60})
    least_poll = int(message.split("endpointPollSeconds of at least ")[1].split()[0])
    most_wait = int(message.split("endpointMaxWaitMinutes of at most ")[1].split(".")[0])
    assert synth_error({"endpointPollSeconds": least_poll, "endpointMaxWaitMinutes": 60}) is None
    assert synth_error({"endpointPollSeconds": least_poll - 1, "endpointMaxWaitMinutes": 60}) is not None
    assert synth_error({"endpointPollSeconds": 2, "endpointMaxWaitMinutes": most_wait}) is None
