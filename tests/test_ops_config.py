"""Configuration of spot training, log retention and alarm thresholds: defaults and errors."""

import pytest

from stacks.config import LOG_RETENTION_DAYS, AppConfig, ConfigError


def load(context):
    return AppConfig.load(context.get, {})


def test_defaults():
    config = load({})
    assert (config.training.spot, config.training.spot_max_wait_minutes) == (True, 150)
    assert config.monitoring.log_retention_days == 30
    assert (
        config.monitoring.api_5xx_percent,
        config.monitoring.endpoint_5xx_errors,
        config.monitoring.endpoint_stuck_minutes,
    ) == (5, 1, 30)


def test_spot_wait_defaults_to_the_run_time_plus_the_capacity_wait_and_accepts_command_line_strings():
    config = load({"spotTraining": "true", "trainingMaxRuntimeMinutes": "90"})
    assert (config.training.spot, config.training.spot_max_wait_minutes) == (True, 120)
    assert load({"spotTraining": "false"}).training.spot is False
    assert load({"spotMaxWaitMinutes": "90", "trainingMaxRuntimeMinutes": 90}).training.spot_max_wait_minutes == 90


def test_spot_wait_shorter_than_the_run_time_is_refused_naming_both_keys():
    with pytest.raises(ConfigError) as error:
        load({"spotTraining": True, "spotMaxWaitMinutes": 60, "trainingMaxRuntimeMinutes": 120})
    assert error.value.key == "spotMaxWaitMinutes"
    assert "trainingMaxRuntimeMinutes (120)" in str(error.value)


def test_log_retention_must_be_a_cloudwatch_value():
    assert load({"logRetentionDays": "365"}).monitoring.log_retention_days == 365
    with pytest.raises(ConfigError) as error:
        load({"logRetentionDays": 31})
    assert error.value.key == "logRetentionDays" and "30, 60" in str(error.value)


def test_every_allowed_retention_has_a_cdk_value():
    from stacks.shared.logs import retention

    assert [retention(days) for days in LOG_RETENTION_DAYS]


@pytest.mark.parametrize(
    "key, value",
    [
        ("spotTraining", "maybe"),
        ("alarmApi5xxPercent", 0),
        ("alarmApi5xxPercent", 101),
        ("alarmEndpoint5xxErrors", "many"),
        ("alarmEndpointStuckMinutes", 0),
    ],
)
def test_bad_values_name_their_key(key, value):
    with pytest.raises(ConfigError) as error:
        load({key: value})
    assert error.value.key == key


def test_stuck_alarm_must_fire_before_the_deployment_gives_up():
    assert load({"endpointMaxWaitMinutes": 20}).monitoring.endpoint_stuck_minutes == 19
    with pytest.raises(ConfigError) as error:
        load({"endpointMaxWaitMinutes": 20, "alarmEndpointStuckMinutes": 20})
    assert error.value.key == "alarmEndpointStuckMinutes" and "endpointMaxWaitMinutes (20)" in str(error.value)
