"""The composite schedule: what the installed charging profiles allow, second by second.

Rules (OCPP 1.6 §3.13 "Smart Charging", 2.0.1 K08 GetCompositeSchedule):

* Within a purpose, the valid profile with the highest stack level **that defines a period at
  that instant** leads; a higher level outside its validity window or past its duration does
  not shadow lower ones. At equal stack level a connector's own TxDefaultProfile beats the
  station-wide one (1.6: it "SHALL be replaced only for that specific connector").
* TxProfile replaces TxDefaultProfile for its transaction, instant by instant (TxDefault shows
  through where the TxProfile defines nothing). TxDefaultProfile counts even with no
  transaction: the site is always ready to draw.
* The result is the minimum of that, the station max and the 2.0.1 external constraints.
* Relative profiles start at the transaction start, or at the query start without one (as
  EVerest). Recurring profiles repeat every 24 h / 7 × 24 h from startSchedule and define
  nothing before it. Conversion: ``W = A × phases × V``, numberPhases default 3 (K01.FR.49).

The result is exact: it is evaluated at every instant where any profile can change.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from adapters.ocpp.profiles import (
    ChargingProfile,
    Kind,
    ProfileStore,
    Purpose,
    RateUnit,
    Recurrency,
    SchedulePeriod,
    UtcTime,
    utc_whole_s,
)
from energytree.errors import RequestError
from energytree.types import format_timestamp

if TYPE_CHECKING:
    from adapters.ocpp.versions import OcppVersion

__all__ = [
    "DEFAULT_LIMIT",
    "DEFAULT_PHASES",
    "MAX_DURATION_S",
    "CompositePeriod",
    "CompositeSchedule",
    "LimitPeriod",
    "Transaction",
    "composite_payload",
    "composite_schedule",
    "convert",
    "period_at",
]

DEFAULT_PHASES = 3  # K01.FR.49: "numberPhases=3 will be assumed unless another number is given"
DEFAULT_LIMIT = {RateUnit.A: 48.0, RateUnit.W: 33120.0}  # libocpp's composite gap filler
MAX_DURATION_S = 31 * 86400  # longer requests are answered for this long (bounds the work)
_REPEAT = {Recurrency.daily: timedelta(days=1), Recurrency.weekly: timedelta(days=7)}


class Transaction(BaseModel):
    """The transaction running on the queried connector: TxProfiles and Relative need it."""

    model_config = ConfigDict(frozen=True)
    id: str
    start: UtcTime


class CompositePeriod(NamedTuple):
    """One period of the composite in the requested unit; ``limit`` None means no profile."""

    start_offset_s: int
    limit: float | None
    number_phases: int | None
    min_charging_rate: float | None


class LimitPeriod(BaseModel):
    """A neutral limit on ``[start, end)``; ``end`` None means open-ended, None values no limit.

    Ampere and watt limits stay side by side (never converted), so an A cap still holds on
    one phase. The core maps ``current_a`` → ac_max_current_A, ``power_w`` → total_power_W,
    ``number_phases`` → ac_max_phase_count and ``min_current_a`` → ac_min_current_A.
    """

    model_config = ConfigDict(frozen=True)
    start: datetime
    end: datetime | None
    current_a: float | None
    power_w: float | None
    number_phases: int | None
    min_current_a: float | None


@dataclass(frozen=True)
class CompositeSchedule:
    """The composite over ``[start, start + duration_s)``, in ``unit`` and neutral form."""

    start: datetime
    duration_s: int
    unit: RateUnit
    periods: tuple[CompositePeriod, ...]
    limit_periods: tuple[LimitPeriod, ...]


@dataclass(frozen=True)
class _Limit:
    """The leading period of one purpose at one instant, in its profile's unit."""

    value: float
    unit: RateUnit
    phases: int | None
    min_rate: float | None


def convert(value: float, unit: RateUnit, to: RateUnit, phases: int | None, volt: float) -> float:
    """``value`` in ``to``: ``W = A × phases × V`` per phase current [A] and total power [W]."""
    if unit is to:
        return value
    factor = (phases or DEFAULT_PHASES) * volt
    return value * factor if to is RateUnit.W else value / factor


def _origin(p: ChargingProfile, t: datetime, session_start: datetime) -> datetime:
    """The start of the schedule run that ``t`` falls in (the first run if ``t`` is before)."""
    s = p.schedule.start_schedule
    if p.kind is Kind.relative:
        return session_start
    assert s is not None  # K01.FR.40, checked on parse
    if p.kind is Kind.absolute or t < s:
        return s
    repeat = _REPEAT[p.recurrency_kind or Recurrency.daily]
    return s + ((t - s) // repeat) * repeat


def period_at(p: ChargingProfile, t: datetime, session_start: datetime) -> SchedulePeriod | None:
    """The period of ``p`` in force at ``t``, or None where ``p`` defines none."""
    if (p.valid_from and t < p.valid_from) or (p.valid_to and t >= p.valid_to):
        return None
    origin = _origin(p, t, session_start)
    if t < origin:
        return None
    offset = int((t - origin).total_seconds())
    if p.schedule.duration_s is not None and offset >= p.schedule.duration_s:
        return None
    starts = [q.start_period_s for q in p.schedule.periods]
    return p.schedule.periods[bisect_right(starts, offset) - 1]


def _origins(
    p: ChargingProfile, start: datetime, end: datetime, session: datetime
) -> list[datetime]:
    """Every schedule run start that can matter in ``[start, end)``."""
    first = _origin(p, start, session)
    if p.kind is not Kind.recurring:
        return [first]
    repeat = _REPEAT[p.recurrency_kind or Recurrency.daily]
    runs = []
    while first < end:
        runs.append(first)
        first += repeat
    return runs


def _breakpoints(
    p: ChargingProfile, start: datetime, end: datetime, session: datetime
) -> Iterator[datetime]:
    """Instants where ``p`` may start, stop or change its limit."""
    yield from (t for t in (p.valid_from, p.valid_to) if t is not None)
    for origin in _origins(p, start, end, session):
        yield from (origin + timedelta(seconds=q.start_period_s) for q in p.schedule.periods)
        if p.schedule.duration_s is not None:
            yield origin + timedelta(seconds=p.schedule.duration_s)


def _leader(stack: Sequence[ChargingProfile], t: datetime, session: datetime) -> _Limit | None:
    """The limit of the highest profile in ``stack`` (sorted, highest first) defined at ``t``."""
    for p in stack:
        period = period_at(p, t, session)
        if period is not None:
            s = p.schedule
            return _Limit(
                period.limit, s.charging_rate_unit, period.number_phases, s.min_charging_rate
            )
    return None


def _stacks(
    profiles: Iterable[ChargingProfile], connector_id: int, transaction: Transaction | None
) -> dict[Purpose, list[ChargingProfile]]:
    """The profiles that apply to ``connector_id`` per purpose, highest precedence first."""
    stacks: dict[Purpose, list[ChargingProfile]] = {p: [] for p in Purpose}
    for p in profiles:
        if p.connector_id not in (0, connector_id):
            continue
        if p.purpose is Purpose.tx and (
            transaction is None or p.transaction_id != transaction.id or p.connector_id == 0
        ):
            continue
        stacks[p.purpose].append(p)
    for stack in stacks.values():
        stack.sort(key=lambda p: (p.stack_level, p.connector_id != 0), reverse=True)
    return stacks


def _limits_at(
    stacks: dict[Purpose, list[ChargingProfile]], t: datetime, session: datetime
) -> list[_Limit]:
    """The limits that bind at ``t``: Tx (else TxDefault), station max, external."""
    tx = _leader(stacks[Purpose.tx], t, session) or _leader(stacks[Purpose.tx_default], t, session)
    others = (_leader(stacks[q], t, session) for q in (Purpose.station_max, Purpose.external))
    return [x for x in (tx, *others) if x is not None]


def _in_unit(limits: Sequence[_Limit], unit: RateUnit, volt: float) -> tuple[Any, ...]:
    """The combined limit in ``unit``: (limit, number_phases, min_charging_rate)."""
    if not limits:
        return (None, None, None)
    phases = [x.phases for x in limits if x.phases is not None]
    mins = [
        convert(x.min_rate, x.unit, unit, x.phases, volt) for x in limits if x.min_rate is not None
    ]
    return (
        min(convert(x.value, x.unit, unit, x.phases, volt) for x in limits),
        min(phases, default=None),
        max(mins, default=None),
    )


def _neutral(limits: Sequence[_Limit], volt: float) -> tuple[Any, ...]:
    """(current_a, power_w, number_phases, min_current_a) with A and W kept apart."""
    amps = [x.value for x in limits if x.unit is RateUnit.A]
    watts = [x.value for x in limits if x.unit is RateUnit.W]
    _, phases, min_a = _in_unit(limits, RateUnit.A, volt)
    return (min(amps, default=None), min(watts, default=None), phases, min_a)


def composite_schedule(
    store: ProfileStore,
    connector_id: int,
    start: datetime,
    duration_s: int,
    unit: RateUnit | str | None = None,
    nominal_voltage_v: float = 230.0,
    transaction: Transaction | None = None,
) -> CompositeSchedule:
    """The composite schedule of ``connector_id`` (0: the whole station) from ``start``.

    ``start`` is cut to whole seconds [UTC]; ``duration_s`` [s] > 0, at most MAX_DURATION_S.
    ``unit`` None picks W when every applicable profile is in W, else A. Gaps without any
    profile have limit None.
    """
    if duration_s <= 0:
        raise RequestError(f"duration must be > 0 s, got {duration_s}")
    duration_s = min(duration_s, MAX_DURATION_S)
    start = utc_whole_s(start)
    end = start + timedelta(seconds=duration_s)
    stacks = _stacks(store.profiles, connector_id, transaction)
    applicable = [p for stack in stacks.values() for p in stack]
    chosen = RateUnit(unit) if unit else _default_unit(applicable)
    session = start if transaction is None else transaction.start
    points = {start} | {
        t for p in applicable for t in _breakpoints(p, start, end, session) if start < t < end
    }
    rows = [(t, _limits_at(stacks, t, session)) for t in sorted(points)]
    return CompositeSchedule(
        start=start,
        duration_s=duration_s,
        unit=chosen,
        periods=_merged_periods(rows, start, chosen, nominal_voltage_v),
        limit_periods=_merged_limit_periods(rows, end, nominal_voltage_v),
    )


def _default_unit(profiles: Sequence[ChargingProfile]) -> RateUnit:
    units = {p.schedule.charging_rate_unit for p in profiles}
    return RateUnit.W if units == {RateUnit.W} else RateUnit.A


def _merged_periods(
    rows: Sequence[tuple[datetime, list[_Limit]]], start: datetime, unit: RateUnit, volt: float
) -> tuple[CompositePeriod, ...]:
    out: list[CompositePeriod] = []
    for t, limits in rows:
        values = _in_unit(limits, unit, volt)
        if not out or tuple(out[-1][1:]) != values:
            out.append(CompositePeriod(int((t - start).total_seconds()), *values))
    return tuple(out)


def _merged_limit_periods(
    rows: Sequence[tuple[datetime, list[_Limit]]], end: datetime, volt: float
) -> tuple[LimitPeriod, ...]:
    merged: list[tuple[datetime, tuple[Any, ...]]] = []
    for t, limits in rows:
        values = _neutral(limits, volt)
        if not merged or merged[-1][1] != values:
            merged.append((t, values))
    ends = [t for t, _ in merged[1:]] + [end]
    return tuple(
        LimitPeriod(
            start=t, end=e, current_a=v[0], power_w=v[1], number_phases=v[2], min_current_a=v[3]
        )
        for (t, v), e in zip(merged, ends, strict=True)
    )


def _floor_01(value: float) -> float:
    """``value`` rounded down to 0.1, as 1.6 requires (multipleOf 0.1) and never above it."""
    return float(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_FLOOR))


def _wire_periods(
    composite: CompositeSchedule, default_limit: float | None
) -> list[dict[str, Any]]:
    """ChargingSchedulePeriods with gaps filled by ``default_limit`` (OCPP has no "no limit")."""
    fill = DEFAULT_LIMIT[composite.unit] if default_limit is None else default_limit
    out: list[dict[str, Any]] = []
    for p in composite.periods:
        period = {
            "start_period": p.start_offset_s,
            "limit": _floor_01(fill if p.limit is None else p.limit),
        }
        if p.number_phases is not None:
            period["number_phases"] = p.number_phases
        if not out or {**out[-1], "start_period": 0} != {**period, "start_period": 0}:
            out.append(period)
    return out


def composite_payload(
    version: OcppVersion,
    composite: CompositeSchedule,
    connector_id: int,
    default_limit: float | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``version.call_result.GetCompositeSchedule`` (status Accepted).

    1.6: ``connector_id``, ``schedule_start`` and ``charging_schedule`` with limits rounded
    down to 0.1. 2.0.1: ``schedule`` (CompositeScheduleType: evse_id, duration,
    schedule_start, charging_rate_unit, charging_schedule_period).
    """
    periods = _wire_periods(composite, default_limit)
    start = format_timestamp(composite.start, whole_seconds=True)
    if version.composite_field == "schedule":
        schedule = {
            "evse_id": connector_id,
            "duration": composite.duration_s,
            "schedule_start": start,
            "charging_rate_unit": str(composite.unit),
            "charging_schedule_period": periods,
        }
        return {"status": version.composite_status.accepted, "schedule": schedule}
    mins = [p.min_charging_rate for p in composite.periods if p.min_charging_rate is not None]
    charging_schedule: dict[str, Any] = {
        "duration": composite.duration_s,
        "start_schedule": start,
        "charging_rate_unit": str(composite.unit),
        "charging_schedule_period": periods,
    }
    if mins:
        charging_schedule["min_charging_rate"] = _floor_01(max(mins))
    return {
        "status": version.composite_status.accepted,
        "connector_id": connector_id,
        "schedule_start": start,
        "charging_schedule": charging_schedule,
    }
