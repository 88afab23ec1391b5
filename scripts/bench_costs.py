"""Cost benchmark (issue 6, point 5; issue 11, point 7): this project's defaults against the manual workflow.

    .venv/bin/python -m scripts.bench_costs [-c key=value ...] [--images 10] [--idle-minutes N]
                                            [--region us-east-1] [--json]

For each workflow it prints the cost of one fine-tune + deploy + N images line by line, each line
with its source, and what the endpoint costs per hour and per day afterwards:
- this project: training on `trainingInstanceType` (managed spot by default, `spotTraining`), the
  asynchronous endpoint on `endpointInstanceType` (cdk.json and -c overrides, as `cdk synth` reads
  them), billed from its start until it scales in to zero instances `idleMinutes` after the last
  request plus the scale-in delay (`idleMinutes` 0: one instance always);
- the manual workflow: on-demand training on ml.g4dn.16xlarge, the same endpoint type, left running.
Figures are instance time times the dated list prices of scripts/pricing_table.json, with the
timings of ../shared/JUMPSTART.md (scripts/costs.py). Targets: at most $0.60 for the session at
defaults in us-east-1, $0.00 per hour once idle. No AWS call is made.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from scripts import costs
from scripts.context import ROOT, context_from
from stacks.config import AppConfig, ConfigError

MANUAL_TRAINING_INSTANCE = "ml.g4dn.16xlarge"
SESSION_TARGET_USD = 0.60


def idle_minutes(config: AppConfig, override: Optional[int]) -> int:
    idle = config.serving.idle_minutes if override is None else override
    if idle < 0:
        raise ConfigError("--idle-minutes", idle, "expected a whole number of minutes, 0 or more (0: never scale in)")
    return idle


def workflows(config: AppConfig, idle: int) -> list[costs.Workflow]:
    endpoint = config.serving.instance_type
    return [
        costs.Workflow(
            "this project",
            config.training.instance_type,
            endpoint,
            idle_minutes=idle or None,
            spot=config.training.spot,
        ),
        costs.Workflow("manual workflow", MANUAL_TRAINING_INSTANCE, endpoint, idle_minutes=None),
    ]


def render(results: list[costs.WorkflowCost], pricing: costs.Pricing, region: str, fixed: dict[str, float]) -> str:
    lines = [
        f"Prices: {region}, list prices as of {pricing.as_of} (scripts/pricing_table.json). "
        f"One fine-tune + deploy + {results[0].images} images:",
        "",
    ]
    for r in results:
        lines.append(
            f"{r.workflow.name}: ${r.session_usd:.2f} for the session, then "
            f"${r.idle_hourly_usd:.2f} per hour (${r.idle_daily_usd:.2f} per day); "
            f"first 24 h ${r.first_day_usd:.2f}"
        )
        for line in r.lines:
            lines.append(f"  {line.item:22} ${line.usd:6.3f}  {line.detail}")
            lines.append(f"  {'':22}          source: {line.source}")
        if r.workflow.spot:
            lines.append(f"  if spot capacity never comes (trained again on demand): ${r.on_demand_fallback_usd:.2f}")
        lines.append("")
    ours, manual = results
    verdict = "met" if ours.session_usd <= SESSION_TARGET_USD else "NOT met"
    lines.append(
        f"This project's session: ${ours.session_usd:.2f} (target <= ${SESSION_TARGET_USD:.2f}: {verdict}); "
        f"idle ${ours.idle_hourly_usd:.2f} per hour (target $0.00), the manual workflow's endpoint "
        f"${manual.idle_hourly_usd:.2f} per hour (${manual.idle_daily_usd * 30:.0f} per 30 days)."
    )
    total = sum(fixed.values())
    if total:
        items = ", ".join(f"{name.replace('_', ' ')} ${usd:.2f}" for name, usd in fixed.items())
        lines.append(
            f"Not GPU, billed whether or not anything runs: ${total:.2f} per month for this stack "
            f"({items}; the dashboard and alarms cost nothing while the account stays within "
            "CloudWatch's free tier of 3 dashboards and 10 alarms)."
        )
    lines.append(
        "S3, Lambda, Step Functions, DynamoDB, API Gateway, SNS and CloudWatch alarm evaluations are "
        "negligible at these volumes (left out)."
    )
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        metavar="KEY=VALUE",
        help="configuration override, as with cdk -c (repeatable)",
    )
    parser.add_argument("--images", type=int, default=10, help="images generated in the session (default 10)")
    parser.add_argument("--idle-minutes", type=int, help="override idleMinutes (0: never scale in to zero)")
    parser.add_argument("--region", default="us-east-1", help="region to price (default us-east-1)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    context = context_from([item for pair in (args.context or []) for item in ("-c", pair)], ROOT)
    try:
        config = AppConfig.load(context.get, {})
        idle = idle_minutes(config, args.idle_minutes)
        pricing = costs.Pricing.load()
        results = [costs.workflow_cost(pricing, args.region, w, images=args.images) for w in workflows(config, idle)]
    except (ConfigError, costs.NoPrice) as error:
        print(f"Cannot estimate: {error}", file=sys.stderr)
        return 2
    fixed = costs.fixed_monthly_usd()
    if args.json:
        print(
            json.dumps(
                {
                    "region": args.region,
                    "prices_as_of": pricing.as_of,
                    "workflows": [r.to_dict() for r in results],
                    "fixed_monthly_usd": fixed,
                },
                indent=2,
            )
        )
    else:
        print(render(results, pricing, args.region, fixed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
