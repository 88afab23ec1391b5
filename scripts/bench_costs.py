"""Cost benchmark (issue 6, point 5): this project's defaults against the manual workflow.

    .venv/bin/python -m scripts.bench_costs [-c key=value ...] [--images 10] [--idle-minutes N]
                                            [--region us-east-1] [--json]

For each workflow it prints the cost of one fine-tune + deploy + N images, and what the idle
endpoint costs per hour and per day afterwards:
- this project: training on `trainingInstanceType`, the endpoint on `endpointInstanceType`
  (cdk.json and -c overrides, as `cdk synth` reads them), deleted by the idle shutdown at worst
  `idleMinutes` + the idle check's interval after the last request (`idleMinutes` 0: never);
- the manual workflow: training on ml.g4dn.16xlarge, the same endpoint type, left running.
Figures are instance time times the dated list prices of scripts/pricing_table.json, with the
timings of ../shared/JUMPSTART.md (scripts/costs.py). Target: $0.00 per hour once idle.
No AWS call is made.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional, Sequence

from scripts import costs
from scripts.deploy import ROOT, context_from
from stacks.config import IDLE_CHECK_INTERVAL_MINUTES, AppConfig, ConfigError

MANUAL_TRAINING_INSTANCE = "ml.g4dn.16xlarge"


def idle_window(config: AppConfig, override: Optional[int]) -> int:
    """Minutes an unused endpoint keeps billing: idleMinutes plus the idle check's interval (0: never sleeps)."""
    idle = config.serving.idle_minutes if override is None else override
    if idle < 0:
        raise ConfigError("--idle-minutes", idle, "expected a whole number of minutes, 0 or more (0: never sleep)")
    return idle + IDLE_CHECK_INTERVAL_MINUTES if idle else 0


def workflows(config: AppConfig, idle: int) -> list[costs.Workflow]:
    endpoint = config.serving.instance_type
    return [
        costs.Workflow("this project", config.training.instance_type, endpoint, idle_minutes=idle or None),
        costs.Workflow("manual workflow", MANUAL_TRAINING_INSTANCE, endpoint, idle_minutes=None),
    ]


def render(results: list[costs.WorkflowCost], pricing: costs.Pricing, region: str,
           fixed: dict[str, float]) -> str:
    lines = [f"Prices: {region}, on-demand list prices as of {pricing.as_of} (scripts/pricing_table.json); "
             f"timings: training {costs.DEFAULT_TRAINING_MINUTES:g} min, endpoint creation "
             f"{costs.ENDPOINT_CREATION_MINUTES:g} min, {costs.SECONDS_PER_IMAGE:g} s per image "
             "(../shared/JUMPSTART.md)", ""]
    header = f"{'':18}{'training':>28}{'endpoint':>22}{'fine-tune+deploy+%d img':>26}{'idle $/h':>11}{'idle $/day':>12}{'first 24 h':>12}"
    lines.append(header % results[0].images)
    for r in results:
        w = r.workflow
        shutdown = f"deleted after {r.idle_window_minutes:g} min idle" if w.sleeps else "left running"
        lines.append(
            f"{w.name:18}{w.training_instance_type + ' ' + format(w.training_minutes, 'g') + ' min':>28}"
            f"{w.endpoint_instance_type:>22}{'$' + format(r.session_usd, '.2f'):>26}"
            f"{'$' + format(r.idle_hourly_usd, '.2f'):>11}{'$' + format(r.idle_daily_usd, '.2f'):>12}"
            f"{'$' + format(r.first_day_usd, '.2f'):>12}")
        lines.append(f"{'':18}  training ${r.training_usd:.2f}; endpoint ${r.endpoint_hourly_usd:.3f}/h for "
                     f"{r.endpoint_busy_minutes:g} min busy + {r.idle_window_minutes:g} min idle window, then {shutdown}")
    ours, manual = results
    lines += ["", f"Idle cost after the idle window: ${ours.idle_hourly_usd:.2f} per hour for this project "
                  f"(target $0.00), ${manual.idle_hourly_usd:.2f} per hour for the manual workflow "
                  f"(${manual.idle_daily_usd * 30:.0f} per 30 days)."]
    total = sum(fixed.values())
    if total:
        items = ", ".join(f"{name.replace('_', ' ')} ${usd:.2f}" for name, usd in fixed.items())
        lines.append(f"Not GPU, billed whether or not anything runs: ${total:.2f} per month for this stack "
                     f"({items}; the dashboard and alarms cost nothing while the account stays within "
                     "CloudWatch's free tier of 3 dashboards and 10 alarms).")
    lines.append("S3, Lambda, Step Functions, DynamoDB, API Gateway and SNS are negligible at these volumes "
                 "(left out). Spot training (spotTraining) would lower the training line; not modelled.")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--context", action="append", metavar="KEY=VALUE",
                        help="configuration override, as with cdk -c (repeatable)")
    parser.add_argument("--images", type=int, default=10, help="images generated in the session (default 10)")
    parser.add_argument("--idle-minutes", type=int, help="override idleMinutes (0: never sleep)")
    parser.add_argument("--region", default="us-east-1", help="region to price (default us-east-1)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    context = context_from([item for pair in (args.context or []) for item in ("-c", pair)], ROOT)
    try:
        config = AppConfig.load(context.get, {})
        idle = idle_window(config, args.idle_minutes)
        pricing = costs.Pricing.load()
        results = [costs.workflow_cost(pricing, args.region, w, images=args.images) for w in workflows(config, idle)]
    except (ConfigError, costs.NoPrice) as error:
        print(f"Cannot estimate: {error}", file=sys.stderr)
        return 2
    fixed = costs.fixed_monthly_usd()
    if args.json:
        print(json.dumps({"region": args.region, "prices_as_of": pricing.as_of,
                          "workflows": [r.to_dict() for r in results], "fixed_monthly_usd": fixed}, indent=2))
    else:
        print(render(results, pricing, args.region, fixed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
