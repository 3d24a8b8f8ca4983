"""The real manager against simulated cars, households and meters, in accelerated time.

Hypothesis draws whole sites: nested fuses, 1- and 3-phase cars on 1- and 3-phase EVSEs with
rotations, cars that follow their limit up to 5 s late, a household with appliances that
step, arrivals with and without targets, operator dimming and meter drop-outs. At every tick
the current that flows through each node must stay within its limit (after a disturbance, for
at most the grace of ``Scenario.grace_s``); the EVSEs' limits must not swing while nothing
changes; and every target a plan called reachable must be met.

Two kinds of run share the checks: half-day runs with a 30 s tick, 5 s physics steps and
hourly slots (the days: arrivals, targets, the household's profile, planned by the optimiser),
and ten-minute runs with the production 1 s tick, where cars lag by up to five ticks and the
meter answers every 1–3 ticks (the meter loop's dynamics). Together they simulate
2 × 12 h + 3 × 10 min, more than a day. The issue's measured failures run as fixed cases too.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from energytree.app.closedloop import (
    START,
    ClosedLoop,
    Dimming,
    Record,
    Scenario,
    Session,
)
from energytree.app.loopchecks import missed_targets, oscillations, overloads
from energytree.app.simulation import ApplianceStep, Household, SimulatedCar
from energytree.site import SiteConfig
from optimizer import optimise
from tests.closedloop.strategies import scenarios

RUN = settings(max_examples=2, deadline=None, derandomize=True, phases=[Phase.generate],
               suppress_health_check=list(HealthCheck), print_blob=True)


def run(scenario: Scenario, optimised: bool = False) -> Record:
    """Run a scenario; ``optimised`` plans with the optimiser (for targets), else instantly."""
    planner = (lambda problem, rotation=0: optimise(problem, time_budget_s=2.0,
                                                     rotation=rotation)) if optimised else None
    return asyncio.run(ClosedLoop(scenario, planner=planner).run())


def assert_closed_loop_holds(record: Record) -> None:
    assert overloads(record) == []
    assert oscillations(record) == []
    assert missed_targets(record) == []


@RUN
@given(scenarios(hours=12.0, tick_s=30, step_s=5, slot_minutes=60))
def test_half_days_keep_every_node_within_its_limit_and_meet_promised_targets(
        scenario: Scenario) -> None:
    assert_closed_loop_holds(run(scenario, optimised=True))


@settings(RUN, max_examples=3)
@given(scenarios(hours=1 / 6, tick_s=1))
def test_the_meter_loop_settles_with_lagging_cars_at_the_one_second_tick(
        scenario: Scenario) -> None:
    record = run(scenario)
    assert oscillations(record) == []
    assert missed_targets(record) == []
    assert overloads(record) == []


def household_of(amps: float, on_at_s: float = 0.0) -> Household:
    """A household drawing ``amps`` on every phase from ``on_at_s`` (no daily profile)."""
    at = START + timedelta(seconds=on_at_s)
    return Household(0.0, [ApplianceStep(at, 86_400.0, phase, amps) for phase in range(3)])


def site_of(connection_a: float, evses: list[dict[str, object]]) -> SiteConfig:
    return SiteConfig.model_validate({
        "grid": {"uuid": "grid", "max_current_A": connection_a, "children": evses},
        "horizon_hours": 2})


@pytest.mark.parametrize("evse_meters", [False, True], ids=["no EVSE meters", "EVSE meters"])
@pytest.mark.parametrize("lag_s", [1.0, 5.0])
def test_lagging_cars_and_a_household_step_settle_without_overload(
        lag_s: float, evse_meters: bool) -> None:
    """The issue's case: 32 A connection, 10 A household, cars that follow 0–5 s late; the
    household steps up by 6 A after a minute and a half."""
    evses = [{"evse": "a", "max_current_A": 32}, {"evse": "b", "max_current_A": 32}]
    household = household_of(10.0)
    household.steps += household_of(6.0, on_at_s=90.0).steps
    scenario = Scenario(
        site_of(32, evses), hours=0.05,
        sessions=[Session(e["evse"], 0, 3600, SimulatedCar(max_current_a=32.0, lag_s=lag_s))
                  for e in evses],
        household=household,
        evse_meters=frozenset({"a", "b"} if evse_meters else ()))
    record = run(scenario)
    assert overloads(record) == []
    assert oscillations(record) == []


def test_one_phase_cars_are_budgeted_on_the_phases_their_rotation_names() -> None:
    """Six 1-phase cars on 3-phase EVSEs, two per grid phase by rotation, on a 40 A
    connection, each EVSE metering its phases: once the manager has seen the cars draw on one
    phase, each grid phase carries its own two cars at nearly the connection's current."""
    rotations = ["L1L2L3", "L2L3L1", "L3L1L2"] * 2
    evses = [{"evse": f"e{i}", "max_current_A": 32, "phase_rotation": r}
             for i, r in enumerate(rotations)]
    scenario = Scenario(
        site_of(40, evses), hours=0.1,
        sessions=[Session(f"e{i}", 0, 3600, SimulatedCar(phases=1, max_current_a=32.0,
                                                         lag_s=1.0))
                  for i in range(len(evses))],
        household=household_of(4.0), evse_meters=frozenset(e["evse"] for e in evses))
    record = run(scenario)
    assert overloads(record) == []
    _t, draw, household = record.arrays()
    per_phase = draw[-1].sum(axis=0) + household[-1]
    assert per_phase.min() > 0.9 * 40  # every phase is used, and nearly to the connection


def test_a_one_phase_watt_limit_holds_for_chargers_that_cannot_switch() -> None:
    """The issue's unsafe instruction: 6000 W on one phase (an OCPP profile with numberPhases
    1) must hold for a 3-phase EVSE that cannot switch (its car draws on three phases
    whatever it is told) and for one that can."""
    evses = [{"evse": "fixed", "max_current_A": 32},
             {"evse": "switching", "max_current_A": 32, "phase_switching": True}]
    scenario = Scenario(
        site_of(63, evses), hours=0.05,
        sessions=[Session(e["evse"], 0, 3600, SimulatedCar(max_current_a=32.0, lag_s=1.0))
                  for e in evses],
        household=household_of(2.0), dimmings=[Dimming(0, 6000.0, phases=1)],
        evse_meters=frozenset({"fixed", "switching"}))
    record = run(scenario)
    assert overloads(record) == []
    assert record.site_power_w()[-1] > 0.9 * 6000.0  # and the limit is used, not wasted


@pytest.mark.parametrize("lag_s", [3.5, 5.0])
def test_an_arrival_waits_for_the_car_that_gives_way(lag_s: float) -> None:
    """A fuse of 26 A and 11 kW holds a 3-phase car at its W limit; a second car arrives on a
    1-phase EVSE behind it. Its share may only be granted once the first car, which follows
    ``lag_s`` late, can have come down: at no tick may the fuse carry more than its limits."""
    fuse = {"fuse": "outer", "max_current_A": 26, "max_power_W": 11000, "children": [
        {"evse": "e1", "max_current_A": 32}, {"evse": "e2", "max_current_A": 32, "phases": 1}]}
    scenario = Scenario(
        site_of(63, [fuse]), hours=0.05,
        sessions=[Session("e1", 0, 3600, SimulatedCar(max_current_a=32.0, lag_s=lag_s)),
                  Session("e2", 60, 3600, SimulatedCar(max_current_a=32.0, lag_s=1.0))],
        household=household_of(2.0), evse_meters=frozenset({"e1", "e2"}))
    assert overloads(run(scenario)) == []


def test_room_a_cut_car_without_a_meter_seemed_to_free_is_not_handed_on() -> None:
    """Found by the random search: e0 (no meter of its own) is granted 13 A and its car takes
    10 A. While the loop waited after acting, e0 was cut to 7.9 A and two 1-phase cars
    behind the fuse started on L3 in the 5.1 A that cut seemed to free; 3 A of it had never
    been drawn, and L3 carried 34 A on a 32 A connection. While waiting, a rise may take only
    what the estimate with the least granted leaves."""
    fuse = {"fuse": "outer", "max_current_A": 18, "max_power_W": 11000, "children": [
        {"evse": "e1", "max_current_A": 32, "phases": 1, "phase_rotation": "L3L1L2"},
        {"fuse": "inner", "max_current_A": 11, "children": [
            {"evse": "e2", "phases": 1, "phase_rotation": "L3L1L2"}]}]}
    evses = [{"evse": "e0", "max_current_A": 32, "phase_rotation": "L3L2L1"}, fuse]
    scenario = Scenario(
        site_of(32, evses), hours=0.05, meter_period_s=3,
        sessions=[Session("e0", 48, 3600, SimulatedCar(battery_kwh=80.0, soc_percent=10.0,
                                                      max_current_a=10.0, lag_s=2.0)),
                  Session("e1", 77, 3600, SimulatedCar(battery_kwh=80.0, phases=1,
                                                      max_current_a=16.0, lag_s=5.0)),
                  Session("e2", 74, 3600, SimulatedCar(battery_kwh=80.0, phases=1,
                                                      max_current_a=10.0, lag_s=1.0))],
        household=Household(0.86, [ApplianceStep(START + timedelta(seconds=54), 300.0, 2,
                                                 10.0)]))
    assert overloads(run(scenario)) == []
