"""The cost model and its benchmark command: arithmetic from the table, not printed figures."""

import json

import pytest

from scripts import bench_costs, costs
from stacks.config import IDLE_CHECK_INTERVAL_MINUTES, ConfigError

PRICING = costs.Pricing(as_of="t", source="s", regions={"r": {
    "training": {"small": 1.2, "big": 6.0}, "hosting": {"gpu": 0.6}}})


def test_a_sleeping_endpoint_costs_its_busy_time_and_idle_window_then_nothing():
    workflow = costs.Workflow("ours", "small", "gpu", idle_minutes=30, training_minutes=20)
    result = costs.workflow_cost(PRICING, "r", workflow, images=8, seconds_per_image=15,
                                 endpoint_creation_minutes=10)
    assert result.training_usd == pytest.approx(1.2 * 20 / 60)
    assert result.endpoint_busy_minutes == pytest.approx(10 + 8 * 15 / 60)
    assert result.session_usd == pytest.approx(0.4 + 0.6 * (12 + 30) / 60)
    assert (result.idle_hourly_usd, result.idle_daily_usd) == (0.0, 0.0)
    assert result.first_day_usd == pytest.approx(result.session_usd)


@pytest.mark.parametrize("idle", [None, 0])
def test_an_endpoint_left_running_bills_every_idle_hour(idle):
    workflow = costs.Workflow("manual", "big", "gpu", idle_minutes=idle, training_minutes=30)
    result = costs.workflow_cost(PRICING, "r", workflow, images=10, seconds_per_image=12,
                                 endpoint_creation_minutes=8)
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
    assert pricing.hourly("us-east-1", "training", bench_costs.MANUAL_TRAINING_INSTANCE) > \
        pricing.hourly("us-east-1", "training", "ml.g4dn.2xlarge")
    assert "training/ml.g4dn.16xlarge" in table["estimates"]
    assert costs.fixed_monthly_usd() == {"cloudwatch_dashboard": 3.0, "cloudwatch_alarm": pytest.approx(0.5),
                                         "kms_key": 1.0}


def test_benchmark_compares_the_defaults_with_the_manual_workflow(capsys):
    assert bench_costs.main(["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    ours, manual = report["workflows"]
    pricing = costs.Pricing.load()
    assert ours["workflow"]["training_instance_type"] == "ml.g4dn.2xlarge"
    assert manual["workflow"]["training_instance_type"] == "ml.g4dn.16xlarge"
    # The default idleMinutes (60) plus the idle check's interval: the worst case is billed.
    assert ours["workflow"]["idle_minutes"] == 60 + IDLE_CHECK_INTERVAL_MINUTES
    # The target: nothing per hour once the idle window has passed; the manual endpoint bills on.
    assert ours["idle_hourly_usd"] == 0.0 and ours["idle_daily_usd"] == 0.0
    assert manual["idle_hourly_usd"] == pricing.hourly("us-east-1", "hosting", "ml.g4dn.2xlarge")
    expected = costs.workflow_cost(pricing, "us-east-1", costs.Workflow(
        "this project", "ml.g4dn.2xlarge", "ml.g4dn.2xlarge", idle_minutes=60 + IDLE_CHECK_INTERVAL_MINUTES))
    assert ours["session_usd"] == pytest.approx(expected.session_usd) and ours["images"] == 10


def test_idle_minutes_and_instance_types_follow_the_configuration(capsys):
    assert bench_costs.main(["--json", "-c", "idleMinutes=0", "-c", "endpointInstanceType=ml.g4dn.xlarge"]) == 0
    ours, _ = json.loads(capsys.readouterr().out)["workflows"]
    assert ours["workflow"]["endpoint_instance_type"] == "ml.g4dn.xlarge"
    assert ours["idle_hourly_usd"] == costs.Pricing.load().hourly("us-east-1", "hosting", "ml.g4dn.xlarge")


def test_text_report_names_the_target_and_the_price_date(capsys):
    assert bench_costs.main(["--idle-minutes", "15"]) == 0
    out = capsys.readouterr().out
    assert "deleted after 20 min idle" in out and "left running" in out
    assert "$0.00 per hour for this project (target $0.00)" in out and "as of 2025" in out


@pytest.mark.parametrize("raw", ["-1", "soon"])
def test_a_bad_idle_window_is_refused_naming_the_key(raw, capsys):
    assert bench_costs.main(["-c", f"idleMinutes={raw}"]) == 2
    assert "idleMinutes" in capsys.readouterr().err


def test_a_negative_override_is_refused(capsys):
    assert bench_costs.main(["--idle-minutes", "-1"]) == 2
    assert "--idle-minutes" in capsys.readouterr().err


def test_bad_configuration_exits_2(capsys):
    assert bench_costs.main(["-c", "idleMinutes=-5"]) == 2
    assert "idleMinutes" in capsys.readouterr().err
