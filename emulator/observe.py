"""What the harness reads back from Step Functions: one finished execution and its history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional


@dataclass
class Run:
    """One finished execution with its history."""

    arn: str
    name: str
    status: str
    input: dict[str, Any]
    output: Optional[dict[str, Any]]
    error: Optional[str]
    cause: Optional[str]
    events: list[dict[str, Any]]
    started: datetime
    stopped: Optional[datetime]

    @property
    def entered_states(self) -> list[str]:
        return [e["stateEnteredEventDetails"].get("name", "?") for e in self.events if "stateEnteredEventDetails" in e]

    @property
    def transitions(self) -> int:
        return len(self.entered_states)
