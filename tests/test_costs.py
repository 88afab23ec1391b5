"""`dreambooth cost`: estimates from the dated pricing table, and honest refusals."""

import json

import pytest

from scripts import cli, costs


class OfflineSession:
    region_name = "us-east-1"

    def client(self, name, **kwargs):
        raise AssertionError("cost makes no AWS call")


def test_estimate_is_price_times_time():
    pricing = costs.Pricing(
        as_of="t", source="s", regions={"r": {"training": {"ml.g4dn.2xlarge": 0.9}, "hosting": {"ml.g5.2xlarge": 1.5}}}
    )
    result = costs.estimate(pricing, "r", "ml.g4dn.2xlarge", "ml.g5.2xlarge", training_minutes=40)
    assert result.training_run_usd == pytest.approx(0.6)
    assert (result.endpoint_hourly_usd, result.endpoint_daily_usd) == (1.5, 36.0)


def test_cli_prices_the_configured_defaults(capsys):
    assert cli.main(["--json", "cost"], session=OfflineSession()) == 0
    result = json.loads(capsys.readouterr().out)
    table = costs.Pricing.load()
    hourly = table.hourly("us-east-1", "training", "ml.g4dn.2xlarge")
    assert result["training_run_usd"] == pytest.approx(hourly * costs.DEFAULT_TRAINING_MINUTES / 60, abs=1e-4)
    assert result["endpoint_instance_type"] == "ml.g4dn.2xlarge" and result["prices_as_of"] == table.as_of


def test_unpriced_region_is_refused_not_guessed(capsys):
    assert cli.main(["cost", "--region", "eu-west-1"], session=OfflineSession()) == 1
    assert "no training price" in capsys.readouterr().err


def test_text_output_mentions_the_price_date(capsys):
    assert (
        cli.main(
            ["-c", "endpointInstanceType=ml.g5.2xlarge", "cost", "--training-minutes", "30"], session=OfflineSession()
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "prices as of" in out and "30 min on ml.g4dn.2xlarge" in out and "ml.g5.2xlarge" in out
