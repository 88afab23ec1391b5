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
