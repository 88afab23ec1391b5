"""Cost estimates from the dated pricing table in scripts/pricing_table.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

PRICING_TABLE = Path(__file__).with_name("pricing_table.json")
# Mission figures for the default set-up: ~20 min training on g4dn, up to ~10 min endpoint creation.
DEFAULT_TRAINING_MINUTES = 20.0


class NoPrice(LookupError):
    """The table has no price for that region or instance type."""


@dataclass(frozen=True)
class Pricing:
    as_of: str
    source: str
    regions: dict[str, dict[str, dict[str, float]]]
    spot_savings: float = 0.0
    """Fraction of the on-demand training price managed spot training saves (an assumption: see the table)."""
    spot_source: str = ""

    @classmethod
    def load(cls, path: Path = PRICING_TABLE) -> "Pricing":
        data = json.loads(path.read_text())
        spot = data.get("spot_training", {})
        return cls(
            as_of=data["as_of"],
            source=data["source"],
            regions=data["regions"],
            spot_savings=float(spot.get("assumed_savings", 0.0)),
            spot_source=spot.get("source", ""),
        )

    def hourly(self, region: str, use: str, instance_type: str) -> float:
        try:
            return float(self.regions[region][use][instance_type])
        except KeyError:
            known = ", ".join(sorted(self.regions)) or "none"
            raise NoPrice(
                f"no {use} price for {instance_type} in {region} in scripts/pricing_table.json "
                f"(regions priced: {known})"
            ) from None


@dataclass(frozen=True)
class Estimate:
    region: str
    training_instance_type: str
    training_minutes: float
    training_run_usd: float
    endpoint_instance_type: str
    endpoint_hourly_usd: float
    endpoint_daily_usd: float
    prices_as_of: str
    prices_source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate(
    pricing: Pricing,
    region: str,
    training_instance: str,
    endpoint_instance: str,
    training_minutes: Optional[float] = None,
) -> Estimate:
    minutes = DEFAULT_TRAINING_MINUTES if training_minutes is None else training_minutes
    training_hourly = pricing.hourly(region, "training", training_instance)
    endpoint_hourly = pricing.hourly(region, "hosting", endpoint_instance)
    return Estimate(
        region=region,
        training_instance_type=training_instance,
        training_minutes=minutes,
        training_run_usd=round(training_hourly * minutes / 60, 4),
        endpoint_instance_type=endpoint_instance,
        endpoint_hourly_usd=endpoint_hourly,
        endpoint_daily_usd=round(endpoint_hourly * 24, 2),
        prices_as_of=pricing.as_of,
        prices_source=pricing.source,
    )


# ---- one fine-tune + deploy + N images, and the idle cost, for a workflow ----

# Timings from ../shared/JUMPSTART.md (public JumpStart notebooks and projects; not measured here).
ENDPOINT_CREATION_MINUTES = 10.0
""""Endpoint creation up to 10 minutes"; counted as billed time (conservative)."""
SECONDS_PER_IMAGE = 15.0
"""One 512x512 image with 50-60 steps took about 15 s on a g4dn endpoint in one public project."""
SCALE_IN_DELAY_MINUTES = 3.0
"""After the idle alarm's idleMinutes periods: CloudWatch's evaluation lag, the scaling action and
the instance's shutdown. Assumed (a few minutes); real figures need an AWS account."""
HOURS_PER_DAY = 24
TIMINGS_SOURCE = "../shared/JUMPSTART.md (public JumpStart projects; not measured here)"


@dataclass(frozen=True)
class Workflow:
    """How a fine-tune is trained and served."""

    name: str
    training_instance_type: str
    endpoint_instance_type: str
    idle_minutes: Optional[float]
    """The endpoint's instances stop this many minutes after the last request (async scale-in to zero);
    None (or 0): left running."""
    training_minutes: float = DEFAULT_TRAINING_MINUTES
    spot: bool = False
    """Managed spot training (billed at the on-demand price less the table's assumed spot savings)."""

    @property
    def sleeps(self) -> bool:
        return bool(self.idle_minutes)


@dataclass(frozen=True)
class Line:
    """One priced line of a session: what is billed, for how long, at what price, and where each figure comes from."""

    item: str
    usd: float
    detail: str
    source: str


@dataclass(frozen=True)
class WorkflowCost:
    workflow: Workflow
    images: int
    lines: tuple[Line, ...]
    training_usd: float
    endpoint_hourly_usd: float
    endpoint_busy_minutes: float
    """Start plus generation time, billed while the endpoint works."""
    idle_window_minutes: float
    """Instance time after the last image until the last instance stops (0 for one left running)."""
    session_usd: float
    """One fine-tune + deploy + `images` images, including the idle window before scale-in."""
    on_demand_fallback_usd: float
    """The same session when spot capacity never comes and training runs again on demand."""
    idle_hourly_usd: float
    """Per hour once the idle window has passed: 0 when the endpoint has scaled in to zero."""
    idle_daily_usd: float
    first_day_usd: float
    """The first 24 hours from the start of training: the session plus idle hours until then."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def workflow_cost(
    pricing: Pricing,
    region: str,
    workflow: Workflow,
    images: int = 10,
    seconds_per_image: float = SECONDS_PER_IMAGE,
    endpoint_creation_minutes: float = ENDPOINT_CREATION_MINUTES,
    scale_in_delay_minutes: float = SCALE_IN_DELAY_MINUTES,
) -> WorkflowCost:
    """Instance time times list price, line by line; everything else (S3, Lambda, ...) is negligible.

    The endpoint bills as an asynchronous endpoint does: per instance, from its start until it
    scales in to zero (idleMinutes of the idle alarm plus the scale-in delay after the last image)."""
    table = f"scripts/pricing_table.json ({pricing.as_of} list prices, {region})"
    on_demand = pricing.hourly(region, "training", workflow.training_instance_type)
    savings = pricing.spot_savings if workflow.spot else 0.0
    training_usd = on_demand * (1 - savings) * workflow.training_minutes / 60
    hourly = pricing.hourly(region, "hosting", workflow.endpoint_instance_type)
    busy_minutes = endpoint_creation_minutes + images * seconds_per_image / 60
    window = float(workflow.idle_minutes) + scale_in_delay_minutes if workflow.sleeps else 0.0
    training_price = (
        f"${on_demand:.3f}/h on demand less {savings:.0%} managed spot savings"
        if workflow.spot
        else f"${on_demand:.3f}/h on demand"
    )
    lines = [
        Line(
            "training",
            training_usd,
            f"{workflow.training_instance_type}, {workflow.training_minutes:g} min at {training_price}",
            f"price: {table}"
            + (f"; spot savings: {pricing.spot_source}" if workflow.spot else "")
            + f"; time: {TIMINGS_SOURCE}",
        ),
        Line(
            "endpoint start",
            hourly * endpoint_creation_minutes / 60,
            f"{workflow.endpoint_instance_type}, {endpoint_creation_minutes:g} min at ${hourly:.3f}/h",
            f'price: {table}; time: "endpoint creation up to 10 minutes", {TIMINGS_SOURCE}, billed in full',
        ),
        Line(
            "images",
            hourly * images * seconds_per_image / 3600,
            f"{images} x {seconds_per_image:g} s at ${hourly:.3f}/h",
            f"price: {table}; time: ~15 s per 512x512 image on g4dn, {TIMINGS_SOURCE}",
        ),
    ]
    if workflow.sleeps:
        lines.append(
            Line(
                "idle until scale-in",
                hourly * window / 60,
                f"idleMinutes {workflow.idle_minutes:g} + {scale_in_delay_minutes:g} min scale-in delay at ${hourly:.3f}/h",
                "idleMinutes: the stack's configuration (the idle alarm's one-minute periods); delay: assumed "
                "(CloudWatch evaluation, scaling, instance stop), not measurable offline",
            )
        )
    idle_hourly = 0.0 if workflow.sleeps else hourly
    lines.append(
        Line(
            "afterwards, per hour",
            idle_hourly,
            "zero instances (asynchronous endpoint scaled in)" if workflow.sleeps else "endpoint left running",
            "autoscaling minimum 0 (stacks/config.py)" if workflow.sleeps else f"price: {table}",
        )
    )
    session = sum(line.usd for line in lines[:-1])
    fallback = session + (on_demand * workflow.training_minutes / 60 - training_usd)
    elapsed_hours = (workflow.training_minutes + busy_minutes + window) / 60
    first_day = session + idle_hourly * max(0.0, HOURS_PER_DAY - elapsed_hours)
    return WorkflowCost(
        workflow=workflow,
        images=images,
        lines=tuple(lines),
        training_usd=training_usd,
        endpoint_hourly_usd=hourly,
        endpoint_busy_minutes=busy_minutes,
        idle_window_minutes=window,
        session_usd=session,
        on_demand_fallback_usd=fallback,
        idle_hourly_usd=idle_hourly,
        idle_daily_usd=idle_hourly * HOURS_PER_DAY,
        first_day_usd=first_day,
    )


def fixed_monthly_usd(path: Path = PRICING_TABLE) -> dict[str, float]:
    """What the stack costs per month whether or not anything runs (dashboard, alarms, key), by item."""
    items = json.loads(path.read_text()).get("fixed_monthly", {}).get("items", {})
    return {name: float(item["usd_per_month"]) * int(item.get("count", 1)) for name, item in items.items()}
