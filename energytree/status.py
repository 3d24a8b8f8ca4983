"""What the manager reports about itself: per EVSE, per external source, the grid meter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from energytree.leases import Lease
from energytree.types import OptimizerTarget, format_timestamp

__all__ = ["EvseStatus", "MeterFeed", "SourceStatus", "Status"]


@dataclass(frozen=True)
class MeterFeed:
    """The grid meter as the manager sees it: phase currents [A] if healthy, else None."""

    current_a: tuple[float, float, float] | None
    power_w: float | None
    state: str


@dataclass(frozen=True)
class EvseStatus:
    """One EVSE: what it was granted and why, what it is measured drawing, its plan."""

    uuid: str
    state: str | None
    current_a: float
    phases: int
    power_w: float
    reason: str
    target: OptimizerTarget | None
    planned_kwh: float
    shortfall_kwh: float
    drawn_phases: int | None = None  # phases the car was last measured drawing on
    drawn_w: float | None = None  # what it was last measured drawing [W]


@dataclass(frozen=True)
class SourceStatus:
    """One external source: its lease, and the limit it applies now (``value`` in ``unit``,
    "W" or "A", until ``valid_until``; None while it applies no limit)."""

    name: str
    node_uuid: str
    expires_at: datetime | None
    in_failsafe: bool
    binding: bool
    value: float | None = None
    unit: str = ""
    valid_until: datetime | None = None

    @classmethod
    def of_lease(cls, lease: Lease, now: datetime, reasons: str) -> SourceStatus:
        """A lease as the status reports it; binding if an EVSE's reason names it."""
        applied = lease.applied(now)
        return cls(lease.name, lease.node_uuid, lease.expires_at, lease.in_failsafe(now),
                   f"/{lease.name}:" in reasons,
                   value=None if applied is None else applied.value,
                   unit="" if applied is None else applied.unit,
                   valid_until=None if applied is None else applied.valid_until)

    def applied_text(self) -> str:
        """``", applies 9000 W until 2026-11-23T12:00:00Z"`` (or ``""``) for status lines."""
        if self.value is None:
            return ""
        until = "" if self.valid_until is None else f" until {format_timestamp(self.valid_until)}"
        return f", applies {self.value:g} {self.unit}{until}"


@dataclass(frozen=True)
class Status:
    now: datetime
    evses: list[EvseStatus]
    sources: list[SourceStatus]
    meter: MeterFeed | None
    plan_method: str
    plan_notes: list[str]
    planned_at: datetime | None
