"""The cost model and its benchmark command: arithmetic from the table, not printed figures."""

import json

import pytest

from scripts import bench_costs, costs
from stacks.config import ConfigError  # noqa: F401 (the command refuses bad values with it)

PRICING = costs.Pricing(
    as_of="t",
    source="s",
    regions={"r": {"training": {"small": 1.2, "big": 6.0}, "hosting": {"gpu": 0.6}}},
    spot_savings=0.7,
    spot_source="assumed",
)


def test_an_asynchronous_endpoint_bills_from_its_start_to_its_scale_in_then_nothing():
    workflow = costs.Workflow("ours", "small", "gpu", idle_minutes=30, training_minutes=20)
    result = costs.workflow_cost(
        PRICING, "r", workflow, images=8, seconds_per_image=15, endpoint_creation_minutes=10, scale_in_delay_minutes=3
    )
    assert result.training_usd == pytest.approx(1.2 * 20 / 60)
    assert result.endpoint_busy_minutes == pytest.approx(10 + 8 * 15 / 60)
    assert result.idle_window_minutes == 33
    assert result.session_usd == pytest.approx(0.4 + 0.6 * (12 + 33) / 60)
    assert (result.idle_hourly_usd, result.idle_daily_usd) == (0.0, 0.0)
    assert result.first_day_usd == pytest.approx(result.session_usd)
    # Each line says what it is and where its figures come from, and the lines add up
    assert [line.item for line in result.lines] == [
        "training",
        "endpoint start",
        "images",
        "idle until scale-in",
        "afterwards, per hour",
    ]
    assert all(line.source for line in result.lines)
    assert sum(line.usd for line in result.lines[:-1]) == pytest.approx(result.session_usd)


def test_spot_training_is_billed_less_the_assumed_savings_with_the_on_demand_fallback_beside_it():
    workflow = costs.Workflow("ours", "small", "gpu", idle_minutes=10, training_minutes=20, spot=True)
    result = costs.workflow_cost(PRICING, "r", workflow, images=0)
    assert result.training_usd == pytest.approx(1.2 * 0.3 * 20 / 60)
    assert result.on_demand_fallback_usd == pytest.approx(result.session_usd + 1.2 * 0.7 * 20 / 60)
    assert "assumed" in result.lines[0].source and "70% managed spot savings" in result.lines[0].detail


@pytest.mark.parametrize("idle", [None, 0])
def test_an_endpoint_left_running_bills_every_idle_hour(idle):
    workflow = costs.Workflow("manual", "big", "gpu", idle_minutes=idle, training_minutes=30)
    result = costs.workflow_cost(PRICING, "r", workflow, images=10, seconds_per_image=12, endpoint_creation_minutes=8)
    assert result.session_usd == pytest.approx(6.0 * 30 / 60 + 0.6 * (8 + 2) / 60)
    assert result.idle_window_minutes == 0 and result.idle_hourly_usd == 0.6
    assert result.idle_daily_usd == pytest.approx(0.6 * 24)
    hours_used = (30 + 10) / 60
    assert result.first_day_usd == pytest.approx(result.session_usd + 0.6 * (24 - hours_used))


def test_unpriced_instance_is_refused():
    with pytest.raises(costs.NoPrice):
        costs.workflow_cost(PRICING, "r", costs.Workflow("x", "small", "ml.p5.48xlarge", idle_minutes=60))


def test_the_table_prices_both_workflows_and_says_what_is_estimated():
    table = json.loads(costs.PRICING_TABLE.read_text())
    pricing = costs.Pricing.load()
    assert pricing.hourly("us-east-1", "training", bench_costs.MANUAL_TRAINING_INSTANCE) > pricing.hourly(
        "us-east-1", "training", "ml.g4dn.2xlarge"
    )
    assert "training/ml.g4dn.16xlarge" in table["estimates"]
    assert 0 < pricing.spot_savings < 1 and "assumed" in pricing.spot_source
    assert costs.fixed_monthly_usd() == {
        "cloudwatch_dashboard": 3.0,
        "cloudwatch_alarm": pytest.approx(0.9),
        "kms_key": 1.0,
    }


def test_at_defaults_one_fine_tune_and_ten_images_cost_at_most_60_cents_and_nothing_when_idle(capsys):
    assert bench_costs.main(["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    ours, manual = report["workflows"]
    pricing = costs.Pricing.load()
    assert ours["workflow"]["training_instance_type"] == "ml.g4dn.2xlarge" and ours["workflow"]["spot"] is True
    assert manual["workflow"]["training_instance_type"] == "ml.g4dn.16xlarge"
    # The default idleMinutes (10): the instance bills until the scale-in alarm, then nothing
    assert ours["workflow"]["idle_minutes"] == 10
    assert ours["session_usd"] <= bench_costs.SESSION_TARGET_USD and ours["images"] == 10
    assert ours["idle_hourly_usd"] == 0.0 and ours["idle_daily_usd"] == 0.0
    assert manual["idle_hourly_usd"] == pricing.hourly("us-east-1", "hosting", "ml.g4dn.2xlarge")
    expected = costs.workflow_cost(
        pricing,
        "us-east-1",
        costs.Workflow("this project", "ml.g4dn.2xlarge", "ml.g4dn.2xlarge", idle_minutes=10, spot=True),
    )
    assert ours["session_usd"] == pytest.approx(expected.session_usd)


def test_idle_minutes_and_instance_types_follow_the_configuration(capsys):
    assert (
        bench_costs.main(
            ["--json", "-c", "idleMinutes=0", "-c", "endpointInstanceType=ml.g4dn.xlarge", "-c", "spotTraining=false"]
        )
        == 0
    )
    ours, _ = json.loads(capsys.readouterr().out)["workflows"]
    assert ours["workflow"]["endpoint_instance_type"] == "ml.g4dn.xlarge" and ours["workflow"]["spot"] is False
    assert ours["idle_hourly_usd"] == costs.Pricing.load().hourly("us-east-1", "hosting", "ml.g4dn.xlarge")


def test_text_report_prints_each_line_with_its_source_and_the_target(capsys):
    assert bench_costs.main(["--idle-minutes", "15"]) == 0
    out = capsys.readouterr().out
    assert "idleMinutes 15 + 3 min scale-in delay" in out and "endpoint left running" in out
    assert out.count("source: ") >= 9 and "(target <= $0.60: met)" in out and "as of 2025" in out
    assert "if spot capacity never comes (trained again on demand)" in out


@pytest.mark.parametrize("raw", ["-1", "soon"])
def test_a_bad_idle_time_is_refused_naming_the_key(raw, capsys):
    assert bench_costs.main(["-c", f"idleMinutes={raw}"]) == 2
    assert "idleMinutes" in capsys.readouterr().err


def test_a_negative_override_is_refused(capsys):
    assert bench_costs.main(["--idle-minutes", "-1"]) == 2
    assert "--idle-minutes" in capsys.readouterr().err
