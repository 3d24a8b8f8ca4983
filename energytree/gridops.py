"""Grid-operator commands turned into external limits, with the §14a EnWG guarantee.

Every channel (HTTP variables, the SunSpec percentage, ripple-control contacts, OCPP charging
profiles) becomes one named external-limit source on the node of the controllable devices —
the root of energytree's tree, which holds only the EVSEs; household load is accounted by
the grid meter, so a dimming command never reaches it.

§14a EnWG (BNetzA BK6-22-300, Anlage 1 §4.5.2): dimming must leave the ``n`` controllable
devices at least ``Pmin = 4.2 kW + (n − 1) × GZF(n) × 4.2 kW``; locally generated surplus may
come on top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from energytree.types import ExternalLimits, LimitsReq, ScheduleReqEntry

__all__ = [
    "GZF",
    "P_DEVICE_W",
    "FourteenA",
    "LimitPeriodLike",
    "external_from_periods",
    "percent_base_w",
    "pmin_14a_w",
    "power_limit",
]

P_DEVICE_W = 4200.0
# Gleichzeitigkeitsfaktor by number of controllable devices (BK6-22-300, Anlage 1, §4.5.2).
GZF: Mapping[int, float] = {1: 1.0, 2: 0.8, 3: 0.75, 4: 0.7, 5: 0.65, 6: 0.6, 7: 0.55, 8: 0.5}
GZF_MANY = 0.45  # nine devices or more


def pmin_14a_w(devices: int, gzf: Mapping[int, float] = GZF, gzf_many: float = GZF_MANY,
               per_device_w: float = P_DEVICE_W) -> float:
    """The least power a dimming command must leave to ``devices`` controllable devices [W]."""
    if devices <= 0:
        return 0.0
    factor = gzf.get(devices, gzf_many)
    return per_device_w + (devices - 1) * factor * per_device_w


def percent_base_w(explicit_w: float | None, max_power_w: float | None,
                   max_current_a: float | None, phases: int, voltage_v: float) -> float:
    """What 100 % means in every operator percentage [W]: the configured base, else the
    connection's power limit, else its current limit × phases × voltage (63 A if unknown)."""
    if explicit_w is not None:
        return explicit_w
    if max_power_w is not None:
        return max_power_w
    return (63.0 if max_current_a is None else max_current_a) * phases * voltage_v


@dataclass(frozen=True)
class FourteenA:
    """One site's §14a duty towards the grid operator: what every dimming leaves.

    ``pmin_w`` is ``pmin_14a_w`` of the site's controllable devices; with ``add_pv_surplus``
    what the site exports at the moment (its own generation) comes on top.
    """

    pmin_w: float
    add_pv_surplus: bool = True

    def floor_w(self, grid_power_w: float | None) -> float:
        """The least a dimming command may leave [W], given the grid power now (export < 0)."""
        surplus = 0.0
        if self.add_pv_surplus and grid_power_w is not None:
            surplus = max(0.0, -grid_power_w)
        return self.pmin_w + surplus

    def dimmed_w(self, asked_w: float, grid_power_w: float | None) -> float:
        """What an operator's command of ``asked_w`` leaves the site [W]."""
        return max(asked_w, self.floor_w(grid_power_w))


def power_limit(now: datetime, watts: float) -> ExternalLimits:
    """One import limit [W] from ``now`` on."""
    entry = ScheduleReqEntry(
        timestamp=now,
        limits_to_root=LimitsReq(total_power_W=max(0.0, watts)),
        limits_to_leaves=LimitsReq(),
    )
    return ExternalLimits(schedule_import=[entry])


class LimitPeriodLike(Protocol):
    """A period of an OCPP composite schedule, in neutral terms."""

    @property
    def start(self) -> datetime: ...
    @property
    def current_a(self) -> float | None: ...
    @property
    def power_w(self) -> float | None: ...
    @property
    def number_phases(self) -> int | None: ...
    @property
    def min_current_a(self) -> float | None: ...


def external_from_periods(periods: Sequence[LimitPeriodLike], floor_w: float = 0.0,
                          voltage_v: float = 230.0) -> ExternalLimits:
    """An OCPP composite schedule as external limits: A → ac_max_current_A, W → total_power_W.

    A period without a limit becomes an entry without limits (the source restricts nothing
    then). ``floor_w`` keeps limits at or above the §14a minimum, for amperes spread over the
    period's phases (three if it does not say).
    """
    entries = []
    for period in periods:
        power = None if period.power_w is None else max(period.power_w, floor_w)
        current = period.current_a
        if current is not None:
            current = max(current, floor_w / ((period.number_phases or 3) * voltage_v))
        entries.append(ScheduleReqEntry(
            timestamp=period.start,
            limits_to_root=LimitsReq(
                ac_max_current_A=current,
                total_power_W=power,
                ac_max_phase_count=period.number_phases,
                ac_min_current_A=period.min_current_a,
            ),
            limits_to_leaves=LimitsReq(),
        ))
    return ExternalLimits(schedule_import=entries)
