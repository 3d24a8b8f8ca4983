"""What the manager grants a charger, as the charging profile the charger accepts.

Pure: the grant of an ``EnforcedLimits``, when a new grant is worth a SetChargingProfile,
what the charger advertised, the TxDefaultProfile in its wire form, and the pins that stand
for a charger while it is offline. Usage::

    grant = grant_for(limits, voltage_v=230.0)
    if needs_push(pushed, grant, now, threshold_a=0.5, threshold_pct=5.0):
        profile = tx_default_profile(1, grant, rules, now, stack_level=rules.max_stack_level,
                                     failsafe_a=6.0, lease_s=900, voltage_v=230.0)
        await cp.call(set_profile_call(V16, profile), suppress=False)

**Lease instead of validTo.** OCPP has no validity lease: after ``validTo`` a charger falls
back to lower stack levels or, with none, to its hardware maximum, the opposite of safe. So
the profile never expires; its schedule drops to the failsafe current ``lease_s`` after it was
sent (a second period), and the CSMS re-sends it before then. A charger that loses us lands on
its failsafe current by itself. A charger that allows only one period keeps the last limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from adapters.ocpp.profiles import (
    ChargingProfile,
    ChargingSchedule,
    Kind,
    ProfileRules,
    Purpose,
    RateUnit,
    SchedulePeriod,
    utc_whole_s,
)
from adapters.ocpp.versions import CsmsWire, OcppVersion
from energytree.errors import ConfigError
from energytree.types import (
    EnforcedLimits,
    ExternalLimits,
    LimitsReq,
    ScheduleReqEntry,
    format_timestamp,
    to_utc,
)

__all__ = [
    "CLOCK_SKEW_S", "PROFILE_ID_BASE", "Grant", "Pushed", "charger_rules", "dump_pushed",
    "floor_01", "grant_for", "lease_end", "load_pushed", "needs_push", "offline_limits",
    "set_profile_call", "tx_default_profile",
]

PROFILE_ID_BASE = 7300  # our profile id is this + connector: each push replaces the last one
CLOCK_SKEW_S = 60  # the schedule starts this early, so a charger whose clock lags still applies it

@dataclass(frozen=True)
class Grant:
    """What one EVSE may draw now: current per phase [A] (0.1 A steps) on ``phases`` phases."""

    current_a: float
    phases: int | None = None  # None: not said; OCPP assumes 3


@dataclass(frozen=True)
class Pushed:
    """A profile the charger accepted, and when it falls back to its failsafe current."""

    grant: Grant
    at: datetime
    lease_end: datetime | None  # None: the charger keeps the limit (one period only)
    stack_level: int

    def renew_at(self) -> datetime | None:
        """Re-send once less than a third of the lease remains."""
        if self.lease_end is None:
            return None
        return self.at + (self.lease_end - self.at) * 2 / 3


def dump_pushed(pushed: Mapping[str, Pushed]) -> dict[str, Any]:
    """The accepted limits by EVSE uuid as JSON data (see ``load_pushed``)."""
    return {uuid: {"current_a": p.grant.current_a, "phases": p.grant.phases,
                   "at": format_timestamp(p.at), "stack_level": p.stack_level,
                   "lease_end": None if p.lease_end is None else format_timestamp(p.lease_end)}
            for uuid, p in pushed.items()}


def load_pushed(data: object) -> dict[str, Pushed]:
    """``dump_pushed``'s data back; ConfigError if it is not."""
    try:
        assert isinstance(data, dict)
        return {uuid: Pushed(Grant(float(p["current_a"]), p["phases"]), to_utc(p["at"]),
                             None if p["lease_end"] is None else to_utc(p["lease_end"]),
                             int(p["stack_level"]))
                for uuid, p in data.items()}
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"unreadable charger state: {exc!r}") from exc


def floor_01(value: float) -> float:
    """``value`` rounded down to 0.1 (1.6: multipleOf 0.1), never above it."""
    return float(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_FLOOR))


def grant_for(limits: EnforcedLimits, voltage_v: float) -> Grant:
    """The current an EVSE may draw from its EnforcedLimits; export and "no limit" give 0 A.

    A watt cap becomes amperes over the granted phases (3 if not said), which can only lower it.
    """
    res = limits.limits_root_side
    if res is None:
        return Grant(0.0)
    phases = res.ac_max_phase_count or None
    amps = math.inf if res.ac_max_current_A is None else res.ac_max_current_A
    if res.total_power_W is not None:
        amps = min(amps, res.total_power_W / (voltage_v * (phases or 3)))
    if not math.isfinite(amps) or amps <= 0:
        return Grant(0.0, phases)
    return Grant(floor_01(amps), phases)


def needs_push(pushed: Pushed | None, grant: Grant, now: datetime, threshold_a: float,
               threshold_pct: float) -> bool:
    """Send a profile for ``grant``? First time, pause/resume, phases, renewal, or a change
    beyond the threshold: the larger of ``threshold_a`` [A] and ``threshold_pct`` [%]."""
    if pushed is None:
        return True
    renew = pushed.renew_at()
    if renew is not None and now >= renew:
        return True
    old = pushed.grant
    if old.phases != grant.phases or (old.current_a == 0) != (grant.current_a == 0):
        return True
    band = max(threshold_a, threshold_pct / 100 * old.current_a)
    return abs(grant.current_a - old.current_a) > band


def charger_rules(wire: CsmsWire, values: Mapping[str, str]) -> ProfileRules:
    """What the charger advertised (GetConfiguration / GetVariables); unknown → stack level 0,
    one period, amperes."""
    def read(name: str) -> str | None:
        return values.get(wire.settings[name])

    units = _rate_units(read("rate_units")) or frozenset({RateUnit.A})
    return ProfileRules(max_stack_level=_count(read("max_stack_level"), 0),
                        max_periods=max(_count(read("max_periods"), 1), 1),
                        allowed_units=units)


def _count(text: str | None, default: int) -> int:
    try:
        return max(int(text or ""), 0)
    except ValueError:
        return default


def _rate_units(text: str | None) -> frozenset[RateUnit]:
    names = {"Current": RateUnit.A, "A": RateUnit.A, "Power": RateUnit.W, "W": RateUnit.W}
    tokens = (t.strip() for t in (text or "").split(","))
    return frozenset(names[t] for t in tokens if t in names)


def tx_default_profile(connector: int, grant: Grant, rules: ProfileRules, now: datetime, *,
                       stack_level: int, failsafe_a: float, lease_s: float,
                       voltage_v: float) -> ChargingProfile:
    """The TxDefaultProfile for ``grant`` on one connector, in A if allowed, else W.

    Absolute from ``now`` (minus a clock-skew margin); with two periods allowed the second one
    drops to ``failsafe_a`` when the lease ends (see the module docstring).
    """
    unit = RateUnit.A if RateUnit.A in rules.allowed_units else RateUnit.W
    per_amp = 1.0 if unit is RateUnit.A else voltage_v * (grant.phases or 3)
    periods = [SchedulePeriod(start_period_s=0, limit=floor_01(grant.current_a * per_amp),
                              number_phases=grant.phases)]
    if rules.max_periods >= 2:
        periods.append(SchedulePeriod(start_period_s=CLOCK_SKEW_S + math.ceil(lease_s),
                                      limit=floor_01(failsafe_a * per_amp),
                                      number_phases=grant.phases))
    start = utc_whole_s(now) - timedelta(seconds=CLOCK_SKEW_S)
    schedule = ChargingSchedule(charging_rate_unit=unit, periods=tuple(periods),
                                start_schedule=start)
    return ChargingProfile(id=PROFILE_ID_BASE + connector, connector_id=connector,
                           stack_level=stack_level, purpose=Purpose.tx_default,
                           kind=Kind.absolute, schedule=schedule)


def lease_end(profile: ChargingProfile) -> datetime | None:
    """When ``profile`` drops to its failsafe period; None if it has only one period."""
    schedule = profile.schedule
    if len(schedule.periods) < 2 or schedule.start_schedule is None:
        return None
    return schedule.start_schedule + timedelta(seconds=schedule.periods[-1].start_period_s)


def set_profile_call(version: OcppVersion, profile: ChargingProfile) -> Any:
    """The SetChargingProfile request for ``profile`` in ``version``'s wire form."""
    s = profile.schedule
    schedule: Any = {
        "charging_rate_unit": s.charging_rate_unit.value,
        "charging_schedule_period": [_wire_period(p) for p in s.periods],
    }
    if s.start_schedule is not None:
        schedule["start_schedule"] = format_timestamp(s.start_schedule)
    if version.schedules_are_list:
        schedule = [{"id": profile.id, **schedule}]
    wire: dict[str, Any] = {
        version.profile_id_field: profile.id,
        "stack_level": profile.stack_level,
        "charging_profile_purpose": version.purpose_to_wire(profile.purpose.value),
        "charging_profile_kind": profile.kind.value,
        "charging_schedule": schedule,
    }
    if profile.transaction_id is not None:
        wire["transaction_id"] = version.transaction_id_type(profile.transaction_id)
    return version.call.SetChargingProfile(
        **{version.connector_field: profile.connector_id, version.profile_field: wire}
    )


def _wire_period(p: SchedulePeriod) -> dict[str, Any]:
    period: dict[str, Any] = {"start_period": p.start_period_s, "limit": floor_01(p.limit)}
    if p.number_phases is not None:
        period["number_phases"] = p.number_phases
    return period


# ---- offline chargers --------------------------------------------------------------------------


def offline_limits(pushed: Pushed | None, failsafe_a: float, now: datetime
                   ) -> ExternalLimits | None:
    """What an offline charger's EVSE may be drawing, pinned (minimum = maximum) over time.

    Its last accepted limit until the lease ends, then the failsafe current. None if nothing was
    ever accepted: the charger's limit is unknown, so the EVSE keeps its own maximum.
    """
    if pushed is None:
        return None
    entries = [(now, pushed.grant.current_a)]
    if pushed.lease_end is not None:
        if pushed.lease_end <= now:
            entries = []
        entries.append((max(pushed.lease_end, now), failsafe_a))
    return ExternalLimits(schedule_import=[_pinned(t, amps) for t, amps in entries])


def _pinned(at: datetime, amps: float) -> ScheduleReqEntry:
    pin = LimitsReq(ac_max_current_A=amps, ac_min_current_A=amps)
    return ScheduleReqEntry(timestamp=at, limits_to_root=pin, limits_to_leaves=LimitsReq())

