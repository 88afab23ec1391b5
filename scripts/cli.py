"""`dreambooth`: the user's command line. Every command has --help; --json prints machine-readable output.

Exit codes: 0 success, 1 a check or operation failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional, Sequence

import boto3

from scripts import costs, preflight
from scripts.deploy import ROOT, context_from
from stacks.config import AppConfig, ConfigError
from stacks.constructs.jumpstart_lock import JumpStartLock

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _config(args: argparse.Namespace) -> AppConfig:
    context_args = [item for pair in (args.context or []) for item in ("-c", pair)]
    return AppConfig.load(context_from(context_args, ROOT).get, {})


def cmd_preflight(args: argparse.Namespace, session: Any) -> int:
    checks = preflight.run(session, _config(args), JumpStartLock.load())
    if args.json:
        print(json.dumps({"ok": all(c.ok for c in checks), "checks": [c.to_dict() for c in checks]}, indent=2))
    else:
        print(preflight.render(checks))
    return EXIT_OK if all(c.ok for c in checks) else EXIT_FAILED


def cmd_cost(args: argparse.Namespace, session: Any) -> int:
    config = _config(args)
    region = args.region or session.region_name or "us-east-1"
    try:
        result = costs.estimate(costs.Pricing.load(), region, config.training.instance_type,
                                config.serving.instance_type, args.training_minutes)
    except costs.NoPrice as error:
        print(f"Cannot estimate: {error}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return EXIT_OK
    print(
        f"Region {result.region}, prices as of {result.prices_as_of} (on-demand list prices; see "
        "scripts/pricing_table.json)\n"
        f"One training run:  ${result.training_run_usd:.2f}  "
        f"({result.training_minutes:g} min on {result.training_instance_type})\n"
        f"Endpoint:          ${result.endpoint_hourly_usd:.2f} per hour, ${result.endpoint_daily_usd:.2f} per day "
        f"while it runs ({result.endpoint_instance_type})"
    )
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="dreambooth", description=__doc__.splitlines()[0])
    top.add_argument("--json", action="store_true", help="print JSON instead of text")
    top.add_argument("-c", "--context", action="append", metavar="KEY=VALUE",
                     help="configuration override, as with cdk -c (repeatable)")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "preflight", help="check credentials, region, bucket and SageMaker quotas before a deploy",
        description="Check credentials and region, S3 bucket quota headroom, SageMaker quotas for the "
                    "configured training and endpoint instance types (and that they are offered in the "
                    "region), and that the JumpStart lock file covers the region. Changes nothing.",
    )
    check.set_defaults(run=cmd_preflight)
    cost = commands.add_parser(
        "cost", help="estimated cost of a training run and of the endpoint per hour",
        description="Estimate the cost of one training run and of the endpoint per hour for the configured "
                    "instance types, from the dated pricing table in scripts/pricing_table.json. "
                    "Makes no AWS call.",
    )
    cost.add_argument("--region", help="region to price (default: the session's region, else us-east-1)")
    cost.add_argument("--training-minutes", type=float, metavar="MIN",
                      help=f"length of a training run (default {costs.DEFAULT_TRAINING_MINUTES:g})")
    cost.set_defaults(run=cmd_cost)
    return top


def main(argv: Optional[Sequence[str]] = None, session: Any = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args, session or boto3.Session())
    except ConfigError as error:
        print(f"Configuration error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
