"""The pipeline's settings in stacks/config.py: defaults and clear errors."""

from __future__ import annotations

import pytest

from stacks.config import ConfigError, ServingConfig, TrainingConfig


def ctx(values):
    return lambda key: values.get(key)


def test_defaults():
    training, serving = TrainingConfig.from_context(ctx({})), ServingConfig.from_context(ctx({}))
    assert (training.quiet_window_s, training.max_runtime_minutes, training.instance_type) == (120, 120, "ml.g4dn.2xlarge")
    assert (training.min_images, training.max_images, training.max_image_mb) == (3, 100, 20)
    assert training.default_instance_prompt == "a photo of sks {dataset}" and training.default_class_prompt == ""
    assert (serving.endpoint_poll_s, serving.endpoint_max_wait_minutes) == (180, 60)


def test_command_line_strings_are_accepted():
    training = TrainingConfig.from_context(ctx({"quietWindowSeconds": "45", "defaultClassPrompt": " a photo of a dog "}))
    assert training.quiet_window_s == 45 and training.default_class_prompt == "a photo of a dog"


@pytest.mark.parametrize("key, value", [
    ("quietWindowSeconds", 0), ("quietWindowSeconds", "two minutes"), ("trainingMaxRuntimeMinutes", 5),
    ("datasetMinImages", 0), ("datasetMaxImageMegabytes", 500), ("defaultInstancePrompt", ""),
    ("defaultInstancePrompt", "x" * 301), ("trainingInstanceType", "ml.m5.large"),
])
def test_bad_training_values_name_the_key(key, value):
    with pytest.raises(ConfigError) as error:
        TrainingConfig.from_context(ctx({key: value}))
    assert error.value.key == key and key in str(error.value)


def test_max_images_below_min_images_is_refused():
    with pytest.raises(ConfigError, match="datasetMaxImages"):
        TrainingConfig.from_context(ctx({"datasetMinImages": 10, "datasetMaxImages": 5}))


@pytest.mark.parametrize("key, value", [("endpointPollSeconds", 0), ("endpointPollSeconds", 301),
                                        ("endpointMaxWaitMinutes", 1)])
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
    serving = ServingConfig.from_context(ctx({"idleMinutes": "0", "endpointMaxInstances": "5",
                                              "asyncRequestTtlMinutes": "30", "asyncInvocationTimeoutSeconds": "900"}))
    assert (serving.idle_minutes, serving.min_instances, serving.max_instances) == (0, 1, 5)
    assert (serving.request_ttl_minutes, serving.invocation_timeout_s) == (30, 900)


@pytest.mark.parametrize("key, value", [
    ("idleMinutes", -1), ("idleMinutes", 24 * 60 + 1), ("idleMinutes", "an hour"),
    ("endpointMaxInstances", 0), ("endpointMaxInstances", 21), ("endpointTargetBacklogPerInstance", 0),
    ("asyncRequestTtlMinutes", 0), ("asyncRequestTtlMinutes", 361),
    ("asyncInvocationTimeoutSeconds", 0), ("asyncInvocationTimeoutSeconds", 3601),
])
def test_bad_idle_and_scaling_values_name_the_key(key, value):
    with pytest.raises(ConfigError) as error:
        ServingConfig.from_context(ctx({key: value}))
    assert error.value.key == key and key in str(error.value)
