"""The optimiser (``optimizer.optimise``) on small cases whose optimum is computed by hand.

Unless a case says otherwise: 230 V, one-hour slots from NOW, EVSEs of 3 × 16 A with a 6 A
minimum. One ampere on three phases for one hour is 0.69 kWh, so 16 A for an hour is
11.04 kWh.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

import optimizer.solve as solve_module
from energytree.plan import BATTERY_FULL, Plan, instant_plan
from energytree.problem import ExternalSource, Problem
from energytree.types import EnergyFlowRequest, ExternalLimits, ScheduleReqEntry, TimedValue
from optimizer import optimise
from optimizer.highs import HighsError, WarmHighs, load
from optimizer.model import build_model
from optimizer.solve import Solver
from tests.builders import NOW, at, entry, evse, node, problem

KWH_PER_A = 0.69  # [kWh] per ampere on three phases for one hour at 230 V
TOL = 1e-6


def hourly(prices: list[float | None], max_a: float | None = None,
           start: datetime = NOW) -> list[ScheduleReqEntry]:
    """A root schedule with one entry per hour: a price and the same current cap."""
    return [entry(at(60 * i, start), max_a, price=p) for i, p in enumerate(prices)]


def target(kwh: float | None = None, leave_h: float | None = None, start: datetime = NOW,
           **fields: object) -> dict:
    out: dict = dict(fields)
    if kwh is not None:
        out["energy_amount_needed"] = kwh
    if leave_h is not None:
        out["leave_time"] = at(60 * leave_h, start).isoformat()
    return out


def hours(request: EnergyFlowRequest, count: int, start: datetime = NOW,
          **kwargs: object) -> Problem:
    return problem(request, start, slot_minutes=60, horizon_hours=count, **kwargs)


def amps(plan: Plan) -> np.ndarray:
    return np.round(plan.current_a, 3)


def assert_within_fuse(plan: Plan, fuse_a: float) -> None:
    """Three-phase EVSEs under one root fuse: the per-phase sum stays within it."""
    assert np.all(plan.current_a.sum(axis=0) <= fuse_a + TOL)


def assert_all_or_nothing(plan: Plan) -> None:
    a = np.abs(plan.current_a)
    assert np.all((a <= TOL) | (a >= plan.problem.min_current_a - TOL))


# ---------------------------------------------------------------- one EV and prices


def test_one_ev_takes_the_two_cheap_slots() -> None:
    # 16.56 kWh = 24 A·h: the cheap hours 1 and 2 at 0.10, the earlier one first
    request = node("grid", evse("a", target=target(16.56, 4)),
                   schedule=hourly([0.30, 0.10, 0.10, 0.40]))
    plan = optimise(hours(request, 4))
    assert plan.method == "optimiser"
    np.testing.assert_allclose(plan.current_a, [[0.0, 16.0, 8.0, 0.0]], atol=TOL)
    assert plan.energy_kwh() == pytest.approx([16.56])
    assert plan.cost() == pytest.approx(16.56 * 0.10)
    assert plan.shortfall_kwh() == pytest.approx([0.0], abs=TOL)


def test_a_target_below_one_slot_at_minimum_current_still_charges() -> None:
    # 1 kWh, but 6 A for an hour is 4.14 kWh: one hour at the minimum, the cheapest one (as
    # instant_plan would, at once); the car stops by itself when it has its 1 kWh
    request = node("grid", evse("a", target=target(1.0, 4)),
                   schedule=hourly([0.30, 0.10, 0.20, 0.40]))
    plan = optimise(hours(request, 4))
    np.testing.assert_allclose(plan.current_a, [[0, 6, 0, 0]], atol=TOL)
    assert plan.shortfall_kwh() == pytest.approx([0.0], abs=TOL)
    assert plan.cost() == pytest.approx(6 * KWH_PER_A * 0.10)


@pytest.mark.parametrize("prices", [
    pytest.param([0.20, 0.20, 0.20, 0.20], id="flat"),
    pytest.param([None, None, None, None], id="no-prices"),
])
def test_earlier_when_it_costs_nothing(prices: list[float | None]) -> None:
    # 24 A·h with nothing to choose between the hours: as early as possible
    request = node("grid", evse("a", target=target(16.56, 4)), schedule=hourly(prices))
    plan = optimise(hours(request, 4))
    np.testing.assert_allclose(plan.current_a, [[16.0, 8.0, 0.0, 0.0]], atol=TOL)


# ---------------------------------------------------------------- two EVs under one fuse


def test_two_evs_one_fuse_the_earlier_leaver_gets_the_cheap_hour() -> None:
    # Fuse 16 A, both need 16 A·h. a leaves after 2 h, b after 4 h; b comes first in the tree
    # (a first-come greedy gives b the 0.10 hour and a then pays 0.40). Optimum: a in hour 0,
    # b in hour 2 (0.20): 11.04 × (0.10 + 0.20) = 3.312.
    request = node("grid",
                   evse("b", target=target(11.04, 4)),
                   evse("a", target=target(11.04, 2)),
                   schedule=hourly([0.10, 0.40, 0.20, 0.30], 16))
    plan = optimise(hours(request, 4))
    np.testing.assert_allclose(plan.current_a, [[0, 0, 16, 0], [16, 0, 0, 0]], atol=TOL)
    assert plan.cost() == pytest.approx(3.312)
    assert plan.shortfall_kwh() == pytest.approx([0.0, 0.0], abs=TOL)
    assert_within_fuse(plan, 16)


@pytest.mark.parametrize("share", [0.6, 0.7, 0.9])
def test_impossible_targets_share_the_shortfall_fairly(share: float) -> None:
    # Fuse 16 A for 2 h = 22.08 kWh; two EVs each need 22.08 / 2 / share. Each gets the same
    # share of its target (not one 100 % and the other the rest), and the plan says so.
    need = 22.08 / 2 / share
    request = node("grid",
                   evse("a", target=target(need, 2)),
                   evse("b", target=target(need, 2)),
                   schedule=hourly([0.20, 0.20], 16))
    plan = optimise(hours(request, 2))
    assert plan.method == "optimiser"
    assert plan.energy_kwh() == pytest.approx([11.04, 11.04], rel=1e-6)
    assert plan.shortfall_kwh() == pytest.approx([need - 11.04] * 2, rel=1e-6)
    assert_within_fuse(plan, 16)
    for uuid in ("a", "b"):
        assert any(note.startswith(f"{uuid}: target not reachable, {need - 11.04:.2f} of")
                   for note in plan.notes), plan.notes
    # whatever does not charge in a slot names the fuse that stops it
    assert {r for row in plan.reasons for r in row} <= {
        "grid: ac_max_current_A L1", "a: ac_max_current_A", "b: ac_max_current_A"}


def test_shortfall_is_shared_relative_to_each_target() -> None:
    # No minimum current; a needs twice what b needs; 60 % of the total fits: 60 % each
    # (a 14.72 kWh of 24.533, b 7.36 of 12.267).
    total = 22.08 / 0.6
    request = node("grid",
                   evse("a", min_a=None, target=target(total * 2 / 3, 2)),
                   evse("b", min_a=None, target=target(total / 3, 2)),
                   schedule=hourly([0.20, 0.20], 16))
    plan = optimise(hours(request, 2))
    assert plan.energy_kwh() == pytest.approx([14.72, 7.36], rel=1e-6)


def test_phase_rotation_currents_add_up_on_the_shared_grid_phase() -> None:
    # a is one-phase, wired to L2; b is three-phase. Both meet on L2 under a 16 A fuse and
    # each wants a full hour at 16 A: together they get exactly the fuse on L2, both charge.
    # (How they split it is the shortfall bands' business: an ampere is worth 0.23 kWh to a
    # and 0.69 kWh to b, so b gets more than half: 6 A and 10 A.)
    request = node("grid",
                   evse("a", 16, 6, 1, rotation="L2L3L1", target=target(3.68, 1)),
                   evse("b", target=target(11.04, 1)),
                   schedule=hourly([0.20], 16))
    plan = optimise(hours(request, 1))
    assert plan.current_a[:, 0].sum() == pytest.approx(16.0)
    assert np.all(plan.current_a >= 6.0 - TOL)


# ---------------------------------------------------------------- target kinds


@pytest.mark.parametrize(("fields", "expected_a", "cost"), [
    # charge at full power whenever the price is at or below 0.15 (hours 1 and 3), else not
    pytest.param(dict(price_limit=0.15), [0, 16, 0, 16], 11.04 * (0.15 + 0.10), id="limit"),
    # 30 kWh: both cheap hours in full, the last 7.92 kWh in the next cheapest (0.20)
    pytest.param(dict(price_limit=0.15, energy_amount_needed=30.0),
                 [0, 16, 7.92 / KWH_PER_A, 16], 11.04 * 0.25 + 7.92 * 0.20, id="limit+energy"),
    # SoC 80 % of 50 kWh: only 10 kWh fit, so in the cheapest of the cheap hours (0.10)
    pytest.param(dict(price_limit=0.15, car_battery_soc=80, car_battery_capacity_kWh=50),
                 [0, 0, 0, 10 / KWH_PER_A], 10 * 0.10, id="limit+battery-full"),
])
def test_price_limit(fields: dict, expected_a: list[float], cost: float) -> None:
    request = node("grid", evse("a", target=target(**fields)),
                   schedule=hourly([0.30, 0.15, 0.20, 0.10]))
    plan = optimise(hours(request, 4))
    np.testing.assert_allclose(plan.current_a, [expected_a], atol=1e-5)
    assert plan.cost() == pytest.approx(cost)


@pytest.mark.parametrize(("fields", "kwh", "expected_a", "cost"), [
    # 40 % → 80 % of 50 kWh = 20 kWh: hour 1 in full, 8.96 kWh in hour 2
    pytest.param(dict(charge_to_max_percent=80), 20.0, [0, 16, 8.96 / KWH_PER_A, 0], 2.0,
                 id="to-80"),
    # no charge_to_max_percent: to 100 % = 30 kWh; the last 7.92 kWh at 0.20, earlier hour
    pytest.param({}, 30.0, [7.92 / KWH_PER_A, 16, 16, 0], 22.08 * 0.10 + 7.92 * 0.20,
                 id="to-100"),
])
def test_soc_and_capacity_target(fields: dict, kwh: float, expected_a: list[float],
                                 cost: float) -> None:
    goal = target(leave_h=4, car_battery_soc=40, car_battery_capacity_kWh=50, **fields)
    request = node("grid", evse("a", target=goal), schedule=hourly([0.20, 0.10, 0.10, 0.20]))
    plan = optimise(hours(request, 4))
    np.testing.assert_allclose(plan.current_a, [expected_a], atol=1e-5)
    assert plan.energy_kwh() == pytest.approx([kwh])
    assert plan.cost() == pytest.approx(cost)


def test_conversion_efficiency_below_one() -> None:
    # 9.2 kWh into the car at 92 % is 10 kWh from the grid: 10 / 0.69 A in the 0.10 hour
    schedule = [entry(NOW, 16, min_a=6, efficiency=0.92)]
    request = node("grid", evse("a", schedule=schedule, target=target(9.2, 4)),
                   schedule=hourly([0.30, 0.10, 0.30, 0.30]))
    plan = optimise(hours(request, 4))
    np.testing.assert_allclose(plan.current_a, [[0, 10 / KWH_PER_A, 0, 0]], atol=1e-5)
    assert plan.energy_kwh() == pytest.approx([9.2])
    assert plan.cost() == pytest.approx(1.0)


PV_W = [0.0, 2300.0, 3680.0, 1000.0]


@pytest.mark.parametrize("kwh", [10.0, None], ids=["energy", "no-energy"])
def test_full_autonomy_uses_only_the_pv_forecast(kwh: float | None) -> None:
    # One-phase EVSE (16 A, 6 A minimum): 2300 W → 10 A, 3680 W → 16 A, 1000 W is below the
    # 1380 W minimum → 0. The grid is cheap and has room, but is not used: 5.98 kWh.
    forecast = [TimedValue(timestamp=at(60 * i), value=w) for i, w in enumerate(PV_W)]
    request = node("grid", evse("a", 16, 6, 1, target=target(kwh, 4, full_autonomy=True)),
                   schedule=hourly([0.05] * 4, 63), local_generation_W=forecast)
    plan = optimise(hours(request, 4))
    assert plan.method == "optimiser"
    np.testing.assert_allclose(plan.current_a, [[0, 10, 16, 0]], atol=1e-5)
    assert plan.power_w[0] == pytest.approx([0, 2300, 3680, 0])
    assert plan.energy_kwh() == pytest.approx([5.98])
    if kwh is not None:
        assert plan.shortfall_kwh() == pytest.approx([4.02])
        assert any(n.startswith("a: target not reachable, 4.02 of 10.00") for n in plan.notes)
    assert plan.reasons[0][0] == "full autonomy: local generation"


def test_grid_operator_cut_at_night_moves_energy_around_it() -> None:
    # From 22:00 for 8 h; the grid operator allows 0 A from 01:00 to 03:00 on the root, where
    # the tariff is cheapest. 22.08 kWh go to the next cheapest hours, 03:00 (0.15) and
    # 00:00 (0.20): 11.04 × 0.35 = 3.864 instead of 11.04 × 0.20 = 2.208.
    start = datetime(2026, 11, 22, 22, tzinfo=UTC)
    prices = [0.30, 0.30, 0.20, 0.10, 0.10, 0.15, 0.22, 0.30]
    request = node("grid",
                   evse("a", schedule=[entry(start, 16, min_a=6)], target=target(22.08, 8, start)),
                   schedule=hourly(prices, 32, start))
    cut = ExternalSource("dso", "grid", ExternalLimits(schedule_import=[
        entry(start), entry(at(180, start), 0.0), entry(at(300, start))]))
    free = optimise(hours(request, 8, start))
    np.testing.assert_allclose(free.current_a, [[0, 0, 0, 16, 16, 0, 0, 0]], atol=TOL)
    plan = optimise(hours(request, 8, start, external=[cut]))
    np.testing.assert_allclose(plan.current_a, [[0, 0, 16, 0, 0, 16, 0, 0]], atol=TOL)
    assert plan.cost() == pytest.approx(3.864)
    assert plan.energy_kwh() == pytest.approx([22.08])
    assert plan.reasons[0][3] == plan.reasons[0][4] == "grid/dso: ac_max_current_A L1"


# ---------------------------------------------------------------- EVSEs without a target


def test_unplugged_evse_gets_nothing() -> None:
    request = node("grid",
                   evse("a", state="Unplugged", target=target(10.0, 4)),
                   evse("b", state="Unplugged"),
                   evse("c", target=target(11.04, 4)),
                   schedule=hourly([0.30, 0.10, 0.30, 0.30], 32))
    plan = optimise(hours(request, 4))
    np.testing.assert_allclose(plan.current_a[:2], 0.0)
    np.testing.assert_allclose(plan.current_a[2], [0, 16, 0, 0], atol=TOL)
    assert all("no power wanted" in r for r in plan.reasons[0] + plan.reasons[1])


def test_evses_without_target_fill_what_is_left_at_once_and_fairly() -> None:
    # Fuse 32 A. a needs 11.04 kWh: the 0.10 hour. b and c have no target: as much as they
    # can from now on, sharing what a leaves equally (8 A each in hour 1).
    request = node("grid",
                   evse("a", target=target(11.04, 4)), evse("b"), evse("c"),
                   schedule=hourly([0.30, 0.10, 0.30, 0.30], 32))
    plan = optimise(hours(request, 4))
    np.testing.assert_allclose(plan.current_a, [[0, 16, 0, 0], [16, 8, 16, 16],
                                                [16, 8, 16, 16]], atol=TOL)
    assert_within_fuse(plan, 32)


def test_no_target_at_all_plans_like_the_instant_allocator() -> None:
    request = node("grid", evse("a"), evse("b"), evse("c"),
                   schedule=hourly([0.30, 0.10, 0.30, 0.30], 20))
    p = hours(request, 4)
    plan = optimise(p)
    assert plan.method == "optimiser"
    np.testing.assert_allclose(plan.current_a, instant_plan(p).current_a)
    assert_all_or_nothing(plan)
    assert_within_fuse(plan, 20)


def test_met_target_charges_nothing() -> None:
    # energy_amount_needed 0 (or SoC already at the goal): nothing, as with instant_plan
    request = node("grid",
                   evse("a", target=target(0.0, 4)),
                   evse("b", target=target(leave_h=4, car_battery_soc=90,
                                           charge_to_max_percent=80,
                                           car_battery_capacity_kWh=50)),
                   evse("c"),
                   schedule=hourly([0.30, 0.10, 0.30, 0.30], 32))
    plan = optimise(hours(request, 4))
    np.testing.assert_allclose(plan.current_a[:2], 0.0)
    np.testing.assert_allclose(plan.current_a[2], 16.0)


def test_one_evse_tree_plans_like_the_evse_under_an_open_root() -> None:
    goal = target(16.56, 4)
    prices = [0.30, 0.10, 0.10, 0.40]
    alone = optimise(hours(node("grid", evse("a", target=goal), schedule=hourly(prices)), 4))
    nested = node("grid", node("sub", evse("a", target=goal), max_a=63),
                  schedule=hourly(prices))
    np.testing.assert_allclose(optimise(hours(nested, 4)).current_a, alone.current_a)


# ---------------------------------------------------------------- solvers and fallback


def site() -> EnergyFlowRequest:
    return node("grid",
                node("left", evse("a", target=target(15.0, 3)), evse("b", 16, 6, 1),
                     max_a=20),
                evse("c", target=target(20.0, 6)),
                evse("d", target=target(leave_h=6, price_limit=0.12)),
                schedule=hourly([0.30, 0.20, 0.10, 0.15, 0.25, 0.12], 32))


def test_glop_gives_the_same_cost_as_highs() -> None:
    p = hours(site(), 6)
    highs = optimise(p, solver="highs")
    glop = optimise(p, solver="glop")
    assert highs.method == glop.method == "optimiser"
    assert any("(glop)" in note for note in glop.notes)
    assert glop.cost() == pytest.approx(highs.cost(), rel=1e-6)
    np.testing.assert_allclose(glop.energy_kwh(), highs.energy_kwh(), rtol=1e-6, atol=1e-6)


def test_warm_re_solves_give_what_cold_solves_give() -> None:
    # one HiGHS instance through its C API, bounds changed between solves, against a fresh
    # OR-Tools solve each time
    model = build_model(hours(site(), 6))
    warm, cold = Solver(model), Solver(model, warm=False)
    assert warm.warm and not cold.warm
    lower, upper = model.lower.copy(), model.upper.copy()
    for cells in (slice(0, 0), slice(0, model.cells, 2), slice(1, model.cells, 3)):
        upper[cells] = np.minimum(upper[cells], 7.0)
        lower[cells] = np.minimum(upper[cells], 6.0)
        got, expected = warm.solve(lower, upper, 10.0), cold.solve(lower, upper, 10.0)
        assert got.objective == pytest.approx(expected.objective, rel=1e-9, abs=1e-9)
        assert np.all(got.values >= lower - TOL) and np.all(got.values <= upper + TOL)
        np.testing.assert_allclose(got.activity, model.matrix @ got.values)


def test_the_planners_highs_options_reach_the_optimum_of_highs_defaults() -> None:
    model = build_model(hours(site(), 6))
    api = load()
    assert api is not None
    ours = WarmHighs(api, model).solve(model.lower, model.upper, 10.0)
    defaults = WarmHighs(api, model, options={}).solve(model.lower, model.upper, 10.0)
    assert ours[1] == pytest.approx(defaults[1], rel=1e-9, abs=1e-9)


def test_an_option_highs_does_not_know_is_refused_by_name() -> None:
    model = build_model(hours(site(), 6))
    with pytest.raises(HighsError, match="the option presolve=maybe"):
        WarmHighs(load(), model, options={"presolve": "maybe"})


def test_without_the_bundled_highs_library_the_plan_costs_the_same(monkeypatch) -> None:
    p = hours(site(), 6)
    warm = optimise(p)
    monkeypatch.setattr(solve_module, "load", lambda: None)
    assert not Solver(build_model(p)).warm
    cold = optimise(p)
    assert cold.method == warm.method == "optimiser"
    assert cold.cost() == pytest.approx(warm.cost(), rel=1e-6)
    np.testing.assert_allclose(cold.energy_kwh(), warm.energy_kwh(), rtol=1e-6, atol=1e-6)


def test_no_time_budget_falls_back_to_a_safe_instant_plan() -> None:
    p = hours(site(), 6)
    plan = optimise(p, time_budget_s=1e-9)
    assert plan.method == "instant allocator (fallback)"
    assert plan.notes == [*p.notes, plan.notes[-1]]
    assert plan.notes[-1].startswith("optimiser failed:") and "no time left" in plan.notes[-1]
    np.testing.assert_allclose(plan.current_a, instant_plan(p).current_a)
    assert_all_or_nothing(plan)
    left = plan.current_a[0] + plan.current_a[1]  # b is one-phase on L1
    assert np.all(left <= 20 + TOL)
    assert np.all(plan.current_a[[0, 1, 2, 3]].sum(axis=0) <= 32 + TOL)


def test_unknown_solver_falls_back_and_says_why() -> None:
    plan = optimise(hours(site(), 6), solver="simplex-by-hand")
    assert plan.method == "instant allocator (fallback)"
    assert "unknown solver" in plan.notes[-1]


# ---------------------------------------------------------------- physical plans


@pytest.mark.parametrize("planner", [optimise, instant_plan], ids=["optimiser", "instant"])
def test_a_known_battery_bounds_the_plan_with_and_without_a_target(planner) -> None:
    # 24 hours of 16 A could put 265 kWh into each car; the batteries hold far less
    request = node(
        "grid",
        evse("free", target={"car_battery_capacity_kWh": 64.0}),  # no goal, SoC unknown
        evse("soc", target={"car_battery_capacity_kWh": 64.0, "car_battery_soc": 75.0}),
        evse("goal", target=target(80.0, 20, car_battery_capacity_kWh=40.0)),
        evse("unknown"),
        max_a=64)
    plan = planner(hours(request, 24))
    assert plan.energy_kwh(np.full(4, 24)) == pytest.approx([64.0, 16.0, 40.0, 24 * 11.04],
                                                             abs=0.01)
    assert plan.reasons[0][-1].startswith(BATTERY_FULL)
    note = next(n for n in plan.notes if n.startswith("no battery capacity known"))
    assert "unknown" in note and "free" not in note
