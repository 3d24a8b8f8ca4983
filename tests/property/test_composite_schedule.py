"""Properties of the composite schedule against a brute-force reading of the OCPP rules.

The oracle below re-implements "at each instant, the highest valid stack level with a period
defined there leads; Tx replaces TxDefault; the minimum with station max and external
constraints" the slow way, walking recurrences one by one.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.ocpp.composite import CompositeSchedule, composite_schedule, convert
from adapters.ocpp.profiles import (
    ChargingProfile,
    ProfileStore,
    Purpose,
    RateUnit,
    SchedulePeriod,
)

T0 = datetime(2026, 11, 23, tzinfo=UTC)
VOLT = 230.0
MINUTE = 60


@st.composite
def profiles(draw: st.DrawFn, purpose: Purpose | None = None, pid: int = 0) -> ChargingProfile:
    purpose = purpose or draw(
        st.sampled_from([Purpose.station_max, Purpose.tx_default, Purpose.external])
    )
    kind = draw(st.sampled_from(["Absolute", "Recurring"]))
    starts = sorted(draw(st.sets(st.integers(1, 600), max_size=3)))
    periods = [
        {
            "start_period_s": s * MINUTE,
            "limit": draw(st.integers(0, 640)) / 10,
            "number_phases": draw(st.sampled_from([None, 1, 3])),
        }
        for s in [0, *starts]
    ]
    valid_from = draw(st.none() | st.integers(-1440, 4 * 1440))
    valid_len = draw(st.integers(1, 3 * 1440))
    return ChargingProfile.model_validate(
        {
            "id": pid,
            "connector_id": 1 if purpose is Purpose.tx_default and draw(st.booleans()) else 0,
            "stack_level": draw(st.integers(0, 3)),
            "purpose": purpose,
            "kind": kind,
            "recurrency_kind": draw(st.sampled_from(["Daily", "Weekly"]))
            if kind == "Recurring"
            else None,
            "valid_from": None if valid_from is None else T0 + timedelta(minutes=valid_from),
            "valid_to": None
            if valid_from is None or draw(st.booleans())
            else T0 + timedelta(minutes=valid_from + valid_len),
            "schedule": {
                "charging_rate_unit": draw(st.sampled_from(["A", "W"])),
                "start_schedule": T0 + timedelta(minutes=draw(st.integers(-1440, 3 * 1440))),
                "duration_s": draw(st.none() | st.integers(1, 2000).map(lambda m: m * MINUTE)),
                "periods": periods,
            },
        }
    )


@st.composite
def stores(draw: st.DrawFn) -> ProfileStore:
    store = ProfileStore()
    for pid, p in enumerate(draw(st.lists(profiles(), min_size=0, max_size=6))):
        store.install(p.model_copy(update={"id": pid}))
    return store


windows = st.tuples(
    st.integers(-1440, 5 * 1440).map(lambda m: T0 + timedelta(minutes=m)),
    st.integers(1, 3 * 1440).map(lambda m: m * MINUTE),
)


# ------------------------------------------------------------------ the slow reading
def oracle_period(p: ChargingProfile, t: datetime) -> SchedulePeriod | None:
    if (p.valid_from and t < p.valid_from) or (p.valid_to and t >= p.valid_to):
        return None
    origin = p.schedule.start_schedule
    assert origin is not None
    if t < origin:
        return None
    if p.recurrency_kind is not None:
        step = timedelta(days=1 if p.recurrency_kind == "Daily" else 7)
        while origin + step <= t:
            origin += step
    offset = (t - origin).total_seconds()
    if p.schedule.duration_s is not None and offset >= p.schedule.duration_s:
        return None
    return [q for q in p.schedule.periods if q.start_period_s <= offset][-1]


def oracle(store: ProfileStore, t: datetime, unit: RateUnit, connector: int = 1) -> float | None:
    values = []
    for purpose in (Purpose.tx_default, Purpose.station_max, Purpose.external):
        stack = [
            p for p in store.profiles if p.purpose is purpose and p.connector_id in (0, connector)
        ]
        stack.sort(key=lambda p: (p.stack_level, p.connector_id != 0), reverse=True)
        for p in stack:
            q = oracle_period(p, t)
            if q is not None:
                rate = p.schedule.charging_rate_unit
                values.append(convert(q.limit, rate, unit, q.number_phases, VOLT))
                break
    return min(values, default=None)


def value_at(c: CompositeSchedule, t: datetime) -> float | None:
    offset = (t - c.start).total_seconds()
    starts = [p.start_offset_s for p in c.periods]
    return c.periods[bisect_right(starts, offset) - 1].limit


def close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (
        a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))
    )


# ------------------------------------------------------------------ properties
@settings(max_examples=300, deadline=None)
@given(stores(), windows, st.sampled_from([RateUnit.A, RateUnit.W]), st.data())
def test_periods_are_well_formed_and_match_the_oracle(store, window, unit, data) -> None:
    start, duration = window
    c = composite_schedule(store, 1, start, duration, unit)
    offsets = [p.start_offset_s for p in c.periods]
    assert offsets[0] == 0 and offsets == sorted(set(offsets)) and offsets[-1] < duration
    assert all(a[1:] != b[1:] for a, b in pairwise(c.periods))
    probes = [start + timedelta(seconds=s) for s in offsets]
    probes += [start + timedelta(seconds=s - 1) for s in offsets[1:]]
    probes += [start + timedelta(seconds=data.draw(st.integers(0, duration - 1))) for _ in range(5)]
    for t in probes:
        assert close(value_at(c, t), oracle(store, t, unit)), t


@settings(max_examples=200, deadline=None)
@given(
    profiles(purpose=Purpose.station_max, pid=100),
    stores(),
    windows,
    st.sampled_from([RateUnit.A, RateUnit.W]),
)
def test_never_above_a_lone_station_max_profile(station_max, store, window, unit) -> None:
    others = [p for p in store.profiles if p.purpose is not Purpose.station_max]
    store = ProfileStore(profiles=[*others, station_max])
    start, duration = window
    c = composite_schedule(store, 1, start, duration, unit)
    for p in c.periods:
        t = start + timedelta(seconds=p.start_offset_s)
        cap = oracle_period(station_max, t)
        if cap is not None:
            rate = station_max.schedule.charging_rate_unit
            limit = convert(cap.limit, rate, unit, cap.number_phases, VOLT)
            assert p.limit is not None and p.limit <= limit * (1 + 1e-12)


@settings(max_examples=200, deadline=None)
@given(stores(), windows, st.data())
def test_a_sub_window_sees_the_same_values(store, window, data) -> None:
    start, duration = window
    whole = composite_schedule(store, 1, start, duration, RateUnit.A)
    skip = data.draw(st.integers(0, duration - 1))
    length = data.draw(st.integers(1, duration - skip))
    part = composite_schedule(store, 1, start + timedelta(seconds=skip), length, RateUnit.A)
    for p in part.periods:
        t = part.start + timedelta(seconds=p.start_offset_s)
        assert close(p.limit, value_at(whole, t))
    for p in whole.periods:
        t = whole.start + timedelta(seconds=p.start_offset_s)
        if part.start <= t < part.start + timedelta(seconds=length):
            assert close(p.limit, value_at(part, t))


@settings(max_examples=100, deadline=None)
@given(stores(), windows)
def test_limit_periods_tile_the_window(store, window) -> None:
    start, duration = window
    c = composite_schedule(store, 1, start, duration)
    lps = c.limit_periods
    assert lps[0].start == start and lps[-1].end == start + timedelta(seconds=duration)
    assert all(a.end == b.start for a, b in pairwise(lps))
    for lp in lps:
        amps = oracle(store, lp.start, RateUnit.A)
        got = [x for x in (lp.current_a, lp.power_w) if x is not None]
        assert (amps is None) == (not got)
