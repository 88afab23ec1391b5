"""ApiConfig: typed values, a ConfigError naming the key for bad ones (defaults: tests/test_settings_docs.py)."""

from __future__ import annotations

import pytest

from stacks.config import ApiConfig, ConfigError


def load(**context):
    return ApiConfig.from_context(context.get)


def test_values_given_on_the_command_line_arrive_as_text_and_are_parsed():
    config = load(
        apiAuth="iam",
        apiRateLimit="12",
        apiBurstLimit="30",
        apiDailyQuota="5000",
        apiMaxWaitSeconds="25",
        generationTtlDays="2",
        imageUrlExpirySeconds="600",
        apiCorsAllowOrigin="https://studio.example.com:8443",
    )
    assert config == ApiConfig(
        auth="iam",
        rate_limit_rps=12,
        burst_limit=30,
        daily_quota=5000,
        max_wait_s=25,
        generation_ttl_days=2,
        image_url_expiry_s=600,
        cors_allow_origin="https://studio.example.com:8443",
    )
    assert load(apiCorsAllowOrigin="none").cors_allow_origin is None


@pytest.mark.parametrize(
    "key, value",
    [
        ("apiAuth", "cognito"),
        ("apiMaxWaitSeconds", 29),  # API Gateway would cut the request first
        ("apiRateLimit", 0),
        ("apiDailyQuota", "lots"),
        ("generationTtlDays", 0),
        ("imageUrlExpirySeconds", 86400),
        ("apiCorsAllowOrigin", "studio.example.com/path"),
    ],
)
def test_bad_values_name_the_key(key, value):
    with pytest.raises(ConfigError) as caught:
        load(**{key: value})
    assert caught.value.key == key
