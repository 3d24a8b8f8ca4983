"""Plans: energy per slot, targets, EnforcedLimits, rounding."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from energytree.plan import TARGET_MET, instant_plan, limits_res
from tests.builders import NOW, at, entry, evse, node, problem

VOLT = 230.0


def test_energy_is_weighted_by_slot_length() -> None:
    prob = problem(node("grid", evse("a", 16), max_a=32), at(7))  # slots of 8, 15, 15, 15, 7 min
    plan = instant_plan(prob)
    assert prob.grid.durations_s.tolist() == [480, 900, 900, 900, 420]
    assert plan.power_w[0] == pytest.approx([16 * 3 * VOLT] * 5)
    assert plan.energy_kwh()[0] == pytest.approx(11.04)  # one hour at 11.04 kW
    assert plan.energy_kwh(np.array([1]))[0] == pytest.approx(11.04 * 8 / 60)


def test_efficiency_counts_in_delivered_energy() -> None:
    car = evse("a", schedule=[entry(NOW, 16, min_a=6, efficiency=0.9)])
    plan = instant_plan(problem(node("grid", car, max_a=32)))
    assert plan.energy_kwh()[0] == pytest.approx(11.04 * 0.9)


def test_target_met_gives_zero_with_a_reason() -> None:
    prob = problem(node("grid", evse("a", 16, target={"energy_amount_needed": 2}), max_a=32))
    plan = instant_plan(prob)
    # 2 kWh in 15 min is 8 kW: 8000 / 690 = 11.59 A in slot 0, then nothing
    assert plan.current_a[0, 0] == pytest.approx(2000 / 0.25 / (3 * VOLT))
    assert plan.current_a[0, 1:].tolist() == [0, 0, 0]
    assert plan.reasons[0][0] == "target met: ac_max_current_A"
    assert plan.reasons[0][1:] == [TARGET_MET] * 3
    assert plan.energy_kwh()[0] == pytest.approx(2)
    assert plan.shortfall_kwh()[0] == pytest.approx(0)


def test_the_last_bit_of_a_target_takes_at_least_the_minimum() -> None:
    prob = problem(node("grid", evse("a", 16, target={"energy_amount_needed": 0.5}), max_a=32))
    plan = instant_plan(prob)
    assert plan.current_a[0, 0] == pytest.approx(6), "0.5 kWh would be 2.9 A, below 6 A"
    assert plan.current_a[0, 1] == 0


def test_shortfall_when_the_target_cannot_be_met() -> None:
    target = {"energy_amount_needed": 20, "leave_time": at(30)}
    plan = instant_plan(problem(node("grid", evse("a", 16, target=target), max_a=32)))
    assert plan.energy_kwh()[0] == pytest.approx(11.04 / 2)
    assert plan.shortfall_kwh()[0] == pytest.approx(20 - 5.52)


def test_rotation_moves_on_every_slot_so_nobody_starves() -> None:
    prob = problem(node("grid", *[evse(f"e{i}") for i in range(4)], max_a=13), horizon_hours=2)
    plan = instant_plan(prob)
    charging = plan.current_a > 0
    assert np.all(charging.sum(axis=0) == 2), "13 A fits two 6 A minimums"
    assert np.all(charging.any(axis=1)), "over the slots everybody charges"


def test_cost_at_import_prices() -> None:
    root = node("grid", evse("a", 16), schedule=[entry(at(0), 32, price=0.4),
                                                 entry(at(30), 32, price=0.1)])
    plan = instant_plan(problem(root))
    assert plan.cost() == pytest.approx(11.04 * 0.5 * 0.4 + 11.04 * 0.5 * 0.1)


def test_enforced_limits_one_per_evse_in_tree_order_with_the_whole_schedule() -> None:
    request = node("grid", node("sub", evse("b", 10), evse("a", 16)), evse("c", 16,
                   state="Unplugged"), schedule=[entry(NOW, 32, price=0.3)])
    plan = instant_plan(problem(request))
    limits = plan.enforced_limits(NOW + timedelta(seconds=10), 10)
    assert [x.uuid for x in limits] == ["b", "a", "c"]
    first = limits[0]
    assert first.valid_until == NOW + timedelta(seconds=10) and first.valid_for == 10
    assert len(first.schedule) == 4
    assert [s.timestamp for s in first.schedule] == [at(0), at(15), at(30), at(45)]
    assert first.limits_root_side == first.schedule[0].limits_to_root
    assert first.limits_root_side.ac_max_current_A == 10
    assert first.limits_root_side.total_power_W == pytest.approx(6900)
    assert first.limits_root_side.ac_max_phase_count == 3
    assert first.schedule[0].price_per_kwh.value == 0.3
    assert limits[2].limits_root_side.ac_max_current_A == 0
    assert limits[2].limits_root_side.total_power_W == 0


def test_enforced_limits_serialise_as_plain_numbers() -> None:
    plan = instant_plan(problem(node("grid", evse("a"), evse("b"), evse("c"), max_a=32)))
    data = plan.enforced_limits(NOW, 10)[0].model_dump(mode="json", exclude_none=True)
    assert data["limits_root_side"] == {"total_power_W": 7360.0, "ac_max_current_A": 10.66,
                                        "ac_max_phase_count": 3}
    assert data["valid_until"] == "2026-11-23T12:00:00Z"
    assert data["schedule"][0]["timestamp"] == "2026-11-23T12:00:00Z"


@pytest.mark.parametrize(
    ("current", "phases", "power", "amps", "watts"),
    [
        pytest.param(32 / 3, 3, 7359.99, 10.66, 7359.9, id="down, never up"),
        pytest.param(16.0, 3, 11040.0, 16.0, 11040.0, id="exact values stay"),
        pytest.param(-10.006, 1, -2301.38, -10.0, -2301.3, id="export rounds towards zero"),
        pytest.param(1e-9, 3, 1e-6, 0.0, 0.0, id="numerical dust is 0"),
    ],
)
def test_rounding(current, phases, power, amps, watts) -> None:
    res = limits_res(current, phases, power)
    assert res.ac_max_current_A == amps
    assert res.total_power_W == watts
    assert res.ac_max_phase_count == phases


@given(st.floats(-500, 500, allow_nan=False), st.sampled_from([1, 2, 3]))
def test_rounding_never_exceeds_the_computed_value(current: float, phases: int) -> None:
    power = current * phases * VOLT
    res = limits_res(current, phases, power)
    assert abs(res.ac_max_current_A) <= abs(current) + 1e-9
    assert abs(res.total_power_W) <= abs(power) + 1e-9
    assert abs(current) - abs(res.ac_max_current_A) < 0.01 + 1e-9


def test_compressed_schedule_leaves_out_repeats_and_means_the_same() -> None:
    root = node("grid", evse("a", 16), schedule=[entry(at(0), 32), entry(at(30), 10)])
    plan = instant_plan(problem(root))
    full = plan.enforced_limits(NOW, 10)[0].schedule
    short = plan.enforced_limits(NOW, 10, compress=True)[0].schedule
    assert [s.timestamp for s in short] == [at(0), at(30)]
    assert [s.limits_to_root.ac_max_current_A for s in short] == [16, 10]
    for s in full:  # an entry applies until the next one
        current = [c for c in short if c.timestamp <= s.timestamp][-1]
        assert current.limits_to_root == s.limits_to_root
