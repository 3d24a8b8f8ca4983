"""What the manager reports about itself: per EVSE, per external source, the grid meter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from energytree.types import OptimizerTarget

__all__ = ["EvseStatus", "MeterFeed", "SourceStatus", "Status"]


@dataclass(frozen=True)
class MeterFeed:
    """The grid meter as the manager sees it: phase currents [A] if healthy, else None."""

    current_a: tuple[float, float, float] | None
    power_w: float | None
    state: str


@dataclass(frozen=True)
class EvseStatus:
    uuid: str
    state: str | None
    current_a: float
    phases: int
    power_w: float
    reason: str
    target: OptimizerTarget | None
    planned_kwh: float
    shortfall_kwh: float


@dataclass(frozen=True)
class SourceStatus:
    name: str
    node_uuid: str
    expires_at: datetime | None
    in_failsafe: bool
    binding: bool


@dataclass(frozen=True)
class Status:
    now: datetime
    evses: list[EvseStatus]
    sources: list[SourceStatus]
    meter: MeterFeed | None
    plan_method: str
    plan_notes: list[str]
    planned_at: datetime | None
