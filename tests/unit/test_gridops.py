"""§14a EnWG minimum power and grid-operator commands as external limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest

from energytree.gridops import (
    GZF,
    FourteenA,
    external_from_periods,
    percent_base_w,
    pmin_14a_w,
    power_limit,
)
from energytree.types import LimitsReq
from tests.builders import NOW, at


@pytest.mark.parametrize(
    ("devices", "pmin_w"),
    [
        pytest.param(0, 0.0, id="no device"),
        pytest.param(1, 4_200.0, id="n=1"),
        pytest.param(2, 7_560.0, id="n=2: 4.2 + 1 × 0.8 × 4.2"),
        pytest.param(3, 10_500.0, id="n=3: 4.2 + 2 × 0.75 × 4.2"),
        pytest.param(4, 13_020.0, id="n=4: 4.2 + 3 × 0.7 × 4.2"),
        pytest.param(5, 15_120.0, id="n=5: 4.2 + 4 × 0.65 × 4.2"),
        pytest.param(6, 16_800.0, id="n=6: 4.2 + 5 × 0.6 × 4.2"),
        pytest.param(7, 18_060.0, id="n=7: 4.2 + 6 × 0.55 × 4.2"),
        pytest.param(8, 18_900.0, id="n=8: 4.2 + 7 × 0.5 × 4.2"),
        pytest.param(9, 19_320.0, id="n=9: 4.2 + 8 × 0.45 × 4.2"),
        pytest.param(20, 40_110.0, id="n=20: 4.2 + 19 × 0.45 × 4.2"),
    ],
)
def test_pmin_14a(devices: int, pmin_w: float) -> None:
    assert pmin_14a_w(devices) == pytest.approx(pmin_w)


def test_pmin_with_a_site_specific_factor_table() -> None:
    assert pmin_14a_w(2, {**GZF, 2: 1.0}) == pytest.approx(8_400.0)


def test_pmin_never_decreases_with_more_devices() -> None:
    values = [pmin_14a_w(n) for n in range(1, 40)]
    assert values == sorted(values)


def test_power_limit_is_one_import_entry_from_now() -> None:
    limits = power_limit(NOW, 8_800.0)
    [entry] = limits.schedule_import
    assert entry.timestamp == NOW
    assert entry.limits_to_root == LimitsReq(total_power_W=8_800.0)
    assert limits.schedule_export == []
    assert power_limit(NOW, -5.0).schedule_import[0].limits_to_root.total_power_W == 0.0


@dataclass(frozen=True)
class Period:
    start: datetime
    current_a: float | None = None
    power_w: float | None = None
    number_phases: int | None = None
    min_current_a: float | None = None


def test_periods_in_amperes_become_ac_max_current() -> None:
    limits = external_from_periods([Period(NOW, current_a=16.0, number_phases=3,
                                           min_current_a=6.0)], floor_w=7_560.0)
    [entry] = limits.schedule_import
    assert entry.timestamp == NOW
    assert entry.limits_to_root == LimitsReq(ac_max_current_A=16.0, ac_max_phase_count=3,
                                             ac_min_current_A=6.0)


def test_ampere_periods_are_floored_over_their_phases() -> None:
    """7560 W on one phase at 230 V needs 32.87 A: a 16 A one-phase cut is raised to it."""
    limits = external_from_periods([Period(NOW, current_a=16.0, number_phases=1)],
                                   floor_w=7_560.0)
    [entry] = limits.schedule_import
    assert entry.limits_to_root.ac_max_current_A == pytest.approx(7_560.0 / 230.0)


@pytest.mark.parametrize(
    ("power_w", "floor_w", "expected_w"),
    [
        pytest.param(11_000.0, 7_560.0, 11_000.0, id="above the floor"),
        pytest.param(2_000.0, 7_560.0, 7_560.0, id="raised to the §14a floor"),
        pytest.param(0.0, 4_200.0, 4_200.0, id="0 W is not allowed to cut the device off"),
        pytest.param(2_000.0, 0.0, 2_000.0, id="no floor"),
    ],
)
def test_periods_in_watts_become_total_power_with_the_floor(power_w: float, floor_w: float,
                                                            expected_w: float) -> None:
    limits = external_from_periods([Period(NOW, power_w=power_w)], floor_w=floor_w)
    assert limits.schedule_import[0].limits_to_root == LimitsReq(total_power_W=expected_w)


def test_a_schedule_keeps_its_periods_in_order() -> None:
    periods = [Period(NOW, power_w=11_000.0), Period(at(60), power_w=3_000.0),
               Period(at(120))]
    limits = external_from_periods(periods, floor_w=4_200.0)
    assert [e.timestamp for e in limits.schedule_import] == [NOW, at(60), at(120)]
    assert [e.limits_to_root.total_power_W for e in limits.schedule_import] == [
        11_000.0, 4_200.0, None]
    assert limits.schedule_import[2].limits_to_root == LimitsReq()  # restricts nothing


TWO_WALLBOXES = FourteenA(pmin_14a_w(2))  # 7560 W


@pytest.mark.parametrize(
    ("asked_w", "grid_w", "left_w"),
    [
        pytest.param(0.0, 3000.0, 7560.0, id="a cut to nothing leaves Pmin"),
        pytest.param(9000.0, 3000.0, 9000.0, id="above Pmin: as asked"),
        pytest.param(0.0, -2000.0, 9560.0, id="exported surplus comes on top"),
        pytest.param(0.0, None, 7560.0, id="no meter reading: Pmin alone"),
    ],
)
def test_a_dimming_command_never_goes_below_the_floor(asked_w: float, grid_w: float | None,
                                                     left_w: float) -> None:
    assert TWO_WALLBOXES.dimmed_w(asked_w, grid_w) == pytest.approx(left_w)


def test_surplus_is_added_only_where_allowed() -> None:
    assert FourteenA(4200.0, add_pv_surplus=False).floor_w(-5000.0) == 4200.0


@pytest.mark.parametrize(
    ("explicit", "power_w", "current_a", "base_w"),
    [
        pytest.param(22000.0, 30000.0, 35.0, 22000.0, id="the configured base wins"),
        pytest.param(None, 30000.0, 35.0, 30000.0, id="then the connection's W limit"),
        pytest.param(None, None, 35.0, 35 * 3 * 230.0, id="then its current × phases × V"),
        pytest.param(None, None, None, 63 * 3 * 230.0, id="63 A when nothing is known"),
    ],
)
def test_what_100_percent_means(explicit: float | None, power_w: float | None,
                                current_a: float | None, base_w: float) -> None:
    assert percent_base_w(explicit, power_w, current_a, 3, 230.0) == pytest.approx(base_w)
