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

    @classmethod
    def load(cls, path: Path = PRICING_TABLE) -> "Pricing":
        data = json.loads(path.read_text())
        return cls(as_of=data["as_of"], source=data["source"], regions=data["regions"])

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
    pricing: Pricing, region: str, training_instance: str, endpoint_instance: str,
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
HOURS_PER_DAY = 24


@dataclass(frozen=True)
class Workflow:
    """How a fine-tune is trained and served."""

    name: str
    training_instance_type: str
    endpoint_instance_type: str
    idle_minutes: Optional[float]
    """Endpoint deleted this many minutes after the last image; None (or 0): left running."""
    training_minutes: float = DEFAULT_TRAINING_MINUTES

    @property
    def sleeps(self) -> bool:
        return bool(self.idle_minutes)


@dataclass(frozen=True)
class WorkflowCost:
    workflow: Workflow
    images: int
    training_usd: float
    endpoint_hourly_usd: float
    endpoint_busy_minutes: float
    """Creation plus generation time, billed while the endpoint works."""
    idle_window_minutes: float
    """Endpoint time after the last image until it is deleted (0 for a workflow that never deletes it)."""
    session_usd: float
    """One fine-tune + deploy + `images` images, including the idle window before shutdown."""
    idle_hourly_usd: float
    """Per hour once the idle window has passed: 0 when the endpoint is deleted."""
    idle_daily_usd: float
    first_day_usd: float
    """The first 24 hours from the start of training: the session plus idle hours until then."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def workflow_cost(pricing: Pricing, region: str, workflow: Workflow, images: int = 10,
                  seconds_per_image: float = SECONDS_PER_IMAGE,
                  endpoint_creation_minutes: float = ENDPOINT_CREATION_MINUTES) -> WorkflowCost:
    """Instance time times list price; everything else (S3, Lambda, ...) is negligible (see the table)."""
    training_usd = pricing.hourly(region, "training", workflow.training_instance_type) * workflow.training_minutes / 60
    hourly = pricing.hourly(region, "hosting", workflow.endpoint_instance_type)
    busy_minutes = endpoint_creation_minutes + images * seconds_per_image / 60
    window = float(workflow.idle_minutes) if workflow.sleeps else 0.0
    session = training_usd + hourly * (busy_minutes + window) / 60
    idle_hourly = 0.0 if workflow.sleeps else hourly
    elapsed_hours = (workflow.training_minutes + busy_minutes + window) / 60
    first_day = session + idle_hourly * max(0.0, HOURS_PER_DAY - elapsed_hours)
    return WorkflowCost(
        workflow=workflow, images=images, training_usd=training_usd, endpoint_hourly_usd=hourly,
        endpoint_busy_minutes=busy_minutes, idle_window_minutes=window, session_usd=session,
        idle_hourly_usd=idle_hourly, idle_daily_usd=idle_hourly * HOURS_PER_DAY, first_day_usd=first_day,
    )


def fixed_monthly_usd(path: Path = PRICING_TABLE) -> dict[str, float]:
    """What the stack costs per month whether or not anything runs (dashboard, alarms, key), by item."""
    items = json.loads(path.read_text()).get("fixed_monthly", {}).get("items", {})
    return {name: float(item["usd_per_month"]) * int(item.get("count", 1)) for name, item in items.items()}
