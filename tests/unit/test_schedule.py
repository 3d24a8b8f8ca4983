"""Schedule semantics (DESIGN §3, EVerest's selection and merge rules)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energytree.resample import resample_all
from energytree.schedule import (
    merge_entries,
    merge_entry,
    prices_per_slot,
    resample_limits,
    resample_values,
    select,
    setpoints_per_slot,
    value_at,
    watts_at_frequency,
)
from energytree.slots import build_grid
from energytree.types import (
    FrequencyWattPoint,
    LimitsReq,
    ScheduleReqEntry,
    ScheduleSetpointEntry,
    TimedValue,
)
from tests.builders import NOW, at, entry, limits, setpoint

HOUR_GRID = build_grid(NOW, 3600, 900)  # 12:00, 12:15, 12:30, 12:45


@pytest.mark.parametrize(
    ("stamps", "moment", "index"),
    [
        pytest.param([10, 20, 30], 5, 0, id="before the first: the first applies backwards"),
        pytest.param([10, 20, 30], 10, 0, id="at a timestamp: inclusive"),
        pytest.param([10, 20, 30], 19.9, 0, id="just before the second"),
        pytest.param([10, 20, 30], 20, 1, id="at the second"),
        pytest.param([10, 20, 30], 1e9, 2, id="after the last: the last applies forever"),
        pytest.param([10, 20, 20, 30], 20, 2, id="duplicate timestamps: the last wins"),
        pytest.param([10, 20, 20, 30], 25, 2, id="after a duplicate: still the last of them"),
        pytest.param([30, 10, 20], 15, 1, id="unsorted input"),
        pytest.param([30, 10, 20], 35, 0, id="unsorted input, last in time"),
    ],
)
def test_select(stamps, moment, index) -> None:
    assert select(np.array(stamps, dtype=float), np.array([moment]))[0] == index


def test_value_at_reads_entries_and_empty_gives_none() -> None:
    entries = [TimedValue(timestamp=at(0), value=1), TimedValue(timestamp=at(30), value=2)]
    assert value_at(entries, at(-60)).value == 1
    assert value_at(entries, at(30)).value == 2
    assert value_at([], NOW) is None


def test_empty_schedule_allows_nothing() -> None:
    lim = resample_limits([], HOUR_GRID, "n")
    assert np.all(lim.current_a == 0)
    assert np.all(lim.power_w == 0)
    assert lim.power_source[0] == "n (empty schedule)"


def test_missing_values_mean_no_limit() -> None:
    lim = resample_limits([entry()], HOUR_GRID, "n")
    assert np.all(np.isinf(lim.current_a))
    assert np.all(np.isinf(lim.power_w))
    assert lim.min_current_a.tolist() == [0.0] * 4
    assert lim.max_phases.tolist() == [3] * 4
    assert lim.min_phases.tolist() == [1] * 4


def test_entries_resampled_onto_slots() -> None:
    entries = [entry(at(20), 10), entry(at(-5), 32), entry(at(45), 6)]  # unsorted on purpose
    lim = resample_limits(entries, HOUR_GRID, "n")
    # slots start 12:00, 12:15, 12:30, 12:45; the entry at 12:20 is in force at 12:30
    assert lim.current_a[:, 0].tolist() == [32, 32, 10, 6]
    assert lim.current_source[0, 0] == "n"


def test_first_entry_in_the_future_applies_already_now() -> None:
    lim = resample_limits([entry(at(30), 10), entry(at(45), 20)], HOUR_GRID, "n")
    assert lim.current_a[:, 0].tolist() == [10, 10, 10, 20]


def test_duplicate_timestamps_last_wins_on_slots() -> None:
    lim = resample_limits([entry(at(15), 10), entry(at(15), 20)], HOUR_GRID, "n")
    assert lim.current_a[:, 0].tolist() == [10, 20, 20, 20]


@pytest.mark.parametrize(
    ("root", "leaves", "efficiency", "field", "expected"),
    [
        pytest.param(limits(32), limits(16), None, "current_a", 16, id="max current: min"),
        pytest.param(limits(10), limits(16), None, "current_a", 10, id="max current: root"),
        pytest.param(limits(power_w=20_000), limits(power_w=10_000), 0.95, "power_w",
                     10_000 / 0.95, id="leaves power ÷ efficiency (10526.3 W)"),
        pytest.param(limits(power_w=10_000), limits(power_w=10_000), 0.95, "power_w", 10_000,
                     id="root power is smaller"),
        pytest.param(limits(), limits(power_w=10_000), None, "power_w", 10_000,
                     id="efficiency defaults to 1"),
        pytest.param(limits(min_a=6), limits(min_a=8), None, "min_current_a", 8,
                     id="min current: max"),
        pytest.param(limits(ac_max_phase_count=3), limits(ac_max_phase_count=1), None,
                     "max_phases", 1, id="max phases: min"),
        pytest.param(limits(ac_min_phase_count=1), limits(ac_min_phase_count=3), None,
                     "min_phases", 3, id="min phases: max"),
    ],
)
def test_merge_root_and_leaves(root, leaves, efficiency, field, expected) -> None:
    e = entry(leaves=leaves, efficiency=efficiency, **_fields(root))
    value = getattr(resample_limits([e], HOUR_GRID, "n"), field)[0]
    value = np.min(value) if np.ndim(value) else value
    assert value == pytest.approx(expected)


def _fields(lim):
    """LimitsReq → keyword arguments of ``entry`` (root side)."""
    data = lim.model_dump(exclude_none=True)
    return {
        "max_a": data.pop("ac_max_current_A", None),
        "power_w": data.pop("total_power_W", None),
        "min_a": data.pop("ac_min_current_A", None),
        **data,
    }


def test_reference_efficiency_number() -> None:
    e = entry(leaves=limits(power_w=10_000), efficiency=0.95)
    assert resample_limits([e], HOUR_GRID, "n").power_w[0] == pytest.approx(10526.3, abs=0.05)


def test_per_phase_caps_merge_with_the_common_cap() -> None:
    e = entry(max_a=32, per_phase=[10, None, 40], leaves=limits(per_phase=[None, 20, 25]))
    assert resample_limits([e], HOUR_GRID, "n").current_a[0].tolist() == [10, 20, 25]


def test_prices_per_slot() -> None:
    entries = [entry(at(0), 32, price=0.30), entry(at(30), 32, price=0.10), entry(at(45), 32)]
    prices = prices_per_slot(entries, HOUR_GRID)
    assert prices[:3].tolist() == [0.30, 0.30, 0.10]
    assert math.isnan(prices[3]), "an entry without a price gives NaN"
    assert np.all(np.isnan(prices_per_slot([], HOUR_GRID)))


def test_resample_values_and_default() -> None:
    series = [TimedValue(timestamp=at(15), value=5.0)]
    assert resample_values(series, HOUR_GRID, 0.0).tolist() == [5.0] * 4
    assert resample_values([], HOUR_GRID, 7.0).tolist() == [7.0] * 4


TABLE = [FrequencyWattPoint(frequency_Hz=50.2, total_power_W=7000),
         FrequencyWattPoint(frequency_Hz=49.8, total_power_W=-7000)]  # unsorted on purpose


@pytest.mark.parametrize(
    ("frequency", "watts"),
    [
        pytest.param(50.0, 0.0, id="midpoint is 0 W (EVerest: -4.2 kW)"),
        pytest.param(49.9, -3500.0, id="a quarter of the way"),
        pytest.param(49.0, -7000.0, id="held below the table"),
        pytest.param(51.0, 7000.0, id="held above the table"),
        pytest.param(50.2, 7000.0, id="at a point"),
    ],
)
def test_frequency_table_interpolation(frequency, watts) -> None:
    assert watts_at_frequency(TABLE, frequency) == pytest.approx(watts)


def test_setpoints_per_slot_kinds_and_precedence() -> None:
    entries = [
        setpoint(at(0), ac_current_A=10),
        setpoint(at(15), total_power_W=-3000),
        setpoint(at(30), frequency_table=TABLE),
        ScheduleSetpointEntry(timestamp=at(45), setpoint=None),
    ]
    amps, watts = setpoints_per_slot(entries, HOUR_GRID, frequency_hz=49.9)
    assert amps[0] == 10 and np.isnan(watts[0])
    assert np.isnan(amps[1]) and watts[1] == -3000
    assert np.isnan(amps[2]) and watts[2] == pytest.approx(-3500)
    assert np.isnan(amps[3]) and np.isnan(watts[3])


def test_frequency_table_ignored_without_measurement() -> None:
    amps, watts = setpoints_per_slot([setpoint(frequency_table=TABLE)], HOUR_GRID, None)
    assert np.all(np.isnan(amps)) and np.all(np.isnan(watts))


def test_no_setpoints() -> None:
    amps, watts = setpoints_per_slot([], HOUR_GRID, 50.0)
    assert np.all(np.isnan(amps)) and np.all(np.isnan(watts))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(-30, 90), st.floats(0, 32)), max_size=5),
                min_size=1, max_size=6))
def test_all_schedules_at_once_resample_as_one_by_one(schedules) -> None:
    # minutes on a 15-minute grid from NOW: before it, on slot starts, between them, after
    # it; duplicates and unsorted input; empty schedules
    grid = build_grid(NOW, 3600, 900)
    entries = [[entry(at(minute), amps, ac_max_phase_count=1 + i % 3) for i, (minute, amps)
                in enumerate(schedule)] for schedule in schedules]
    names = [f"n{i}" for i in range(len(entries))]
    one_by_one = [resample_limits(e, grid, n) for e, n in zip(entries, names, strict=True)]
    for one, all_at_once in zip(one_by_one,
                                resample_all(entries, grid, names), strict=True):
        for field in ("current_a", "power_w", "min_current_a", "max_phases", "min_phases",
                      "current_source", "power_source"):
            np.testing.assert_array_equal(getattr(all_at_once, field), getattr(one, field))
            assert getattr(all_at_once, field).dtype == getattr(one, field).dtype


AMPS = st.none() | st.sampled_from([0.0, -0.0, 6.0, 16.0]) | st.floats(0, 100)
SIDES = st.builds(
    LimitsReq, total_power_W=st.none() | st.floats(0, 50_000), ac_max_current_A=AMPS,
    ac_min_current_A=AMPS, ac_max_phase_count=st.none() | st.integers(0, 3),
    ac_min_phase_count=st.none() | st.integers(0, 3),
    ac_max_current_per_phase_A=st.none() | st.builds(
        lambda a, b, c: limits(per_phase=[a, b, c]).ac_max_current_per_phase_A,
        AMPS, AMPS, AMPS))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(SIDES, SIDES, st.none() | st.floats(0.5, 1.0)), max_size=6))
def test_entries_merge_at_once_as_one_by_one(sides) -> None:
    entries = [ScheduleReqEntry(timestamp=NOW, limits_to_root=root, limits_to_leaves=leaves,
                                conversion_efficiency=efficiency)
               for root, leaves, efficiency in sides]
    at_once = merge_entries(entries)
    for k, one in enumerate(merge_entry(e) for e in entries):
        assert [float(column[k].tolist()) if column.ndim == 1 else column[k].tolist()
                for column in at_once] == list(one)
    assert [column.dtype for column in at_once] == [float, float, float, np.int8, np.int8]
