"""Simulated cars and EVSEs: they obey the LimitReceiver, charge, taper and fall back."""

from __future__ import annotations

from datetime import timedelta

import pytest

from energytree.app.simulation import (
    ApplianceStep,
    Household,
    SimulatedCar,
    SimulatedEvse,
    household_load_profile,
)
from energytree.clock import ManualClock
from energytree.leaf import LimitReceiver
from energytree.types import EnforcedLimits, EvseState, LimitsRes
from tests.builders import NOW


@pytest.mark.parametrize(
    ("soc", "accepts_a"),
    [
        pytest.param(30.0, 16.0, id="below the taper: full current"),
        pytest.param(80.0, 16.0, id="at the taper point"),
        pytest.param(90.0, 8.0, id="half way down the taper"),
        pytest.param(99.0, 6.0, id="near full: the 6 A minimum, not less"),
        pytest.param(100.0, 0.0, id="full"),
    ],
)
def test_the_battery_tapers_linearly_above_taper_soc(soc: float, accepts_a: float) -> None:
    assert SimulatedCar(soc_percent=soc, max_current_a=16.0).accepts_a() == pytest.approx(
        accepts_a)


def make(clock: ManualClock, car: SimulatedCar | None, amps: float | None = 16.0,
         phases: int = 3, valid_s: float = 3600.0) -> SimulatedEvse:
    receiver = LimitReceiver("e1", clock=clock)
    if amps is not None:
        receiver.apply(EnforcedLimits(
            uuid="e1", valid_until=NOW + timedelta(seconds=valid_s),
            limits_root_side=LimitsRes(ac_max_current_A=amps, ac_max_phase_count=phases)))
    return SimulatedEvse("e1", receiver, 230.0, car)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def test_an_hour_at_10_a_on_three_phases(clock: ManualClock) -> None:
    car = SimulatedCar(battery_kwh=60.0, soc_percent=30.0, max_current_a=16.0, phases=3)
    sim = make(clock, car, amps=10.0)
    sim.step(3600.0)
    assert (sim.current_a, sim.phases_used) == (10.0, 3)
    assert sim.import_wh == pytest.approx(6_900.0)  # 10 A × 3 × 230 V × 1 h
    assert car.soc_percent == pytest.approx(30.0 + 100 * 6.9 / 60)
    assert sim.state is EvseState.Charging
    meter = sim.measurement()
    assert meter.power_W is not None and meter.power_W.total == pytest.approx(6_900.0)
    assert meter.current_A is not None
    assert (meter.current_A.L1, meter.current_A.L2, meter.current_A.L3) == (10.0, 10.0, 10.0)


def test_the_car_draws_the_smaller_of_limit_and_battery(clock: ManualClock) -> None:
    sim = make(clock, SimulatedCar(max_current_a=11.0), amps=16.0)
    sim.step(1.0)
    assert sim.current_a == 11.0


def test_phases_are_the_fewer_of_car_and_limit(clock: ManualClock) -> None:
    one_phase_car = make(clock, SimulatedCar(phases=1), amps=16.0, phases=3)
    one_phase_car.step(1.0)
    assert one_phase_car.phases_used == 1
    meter = one_phase_car.measurement()
    assert meter.current_A is not None
    assert (meter.current_A.L1, meter.current_A.L2, meter.current_A.L3) == (16.0, 0.0, 0.0)
    switched = make(clock, SimulatedCar(phases=3), amps=16.0, phases=1)
    switched.step(1.0)
    assert switched.phases_used == 1


@pytest.mark.parametrize("amps", [0.0, 5.99, -10.0])
def test_below_the_minimum_current_nothing_is_drawn(clock: ManualClock, amps: float) -> None:
    sim = make(clock, SimulatedCar(), amps=amps)
    sim.step(60.0)
    assert (sim.current_a, sim.phases_used, sim.import_wh) == (0.0, 0, 0.0)
    assert sim.state is EvseState.PausedEVSE


def test_an_expired_limit_stops_the_car(clock: ManualClock) -> None:
    sim = make(clock, SimulatedCar(), amps=16.0, valid_s=10.0)
    sim.step(1.0)
    assert sim.current_a == 16.0
    clock.advance(10.0)
    sim.step(1.0)
    assert sim.current_a == 0.0


def test_no_car_means_unplugged_and_idle(clock: ManualClock) -> None:
    sim = make(clock, None)
    sim.step(60.0)
    assert sim.state is EvseState.Unplugged
    assert sim.current_a == 0.0


def test_charging_to_full_tapers_and_finishes(clock: ManualClock) -> None:
    car = SimulatedCar(battery_kwh=10.0, soc_percent=75.0, max_current_a=16.0)
    sim = make(clock, car, amps=16.0)
    currents = []
    for _ in range(400):
        sim.step(60.0)
        currents.append(sim.current_a)
        if sim.state is EvseState.Finished:
            break
    assert sim.state is EvseState.Finished
    assert car.soc_percent == 100.0
    assert currents[0] == 16.0
    assert min(c for c in currents if c > 0) == 6.0
    assert currents == sorted(currents, reverse=True)  # never rises while tapering
    assert sim.import_wh == pytest.approx(2_500.0, rel=0.01)  # 25 % of 10 kWh


def evse_with(clock: ManualClock, car: SimulatedCar, *, amps: float = 16.0, phases: int = 3,
              evse_phases: int = 3, rotation: str = "L1L2L3",
              switchable: bool = True) -> SimulatedEvse:
    sim = make(clock, None, amps=amps, phases=phases)
    sim.evse_phases, sim.phase_rotation, sim.can_switch_phases = evse_phases, rotation, switchable
    sim.plug(car)
    return sim


@pytest.mark.parametrize(
    ("car_phases", "evse_phases", "rotation", "grid"),
    [
        pytest.param(1, 3, "L1L2L3", (16.0, 0.0, 0.0), id="1-phase car, plain rotation: L1"),
        pytest.param(1, 3, "L2L3L1", (0.0, 16.0, 0.0), id="1-phase car, rotated: L2"),
        pytest.param(1, 3, "L3L2L1", (0.0, 0.0, 16.0), id="1-phase car, reversed: L3"),
        pytest.param(3, 3, "L3L1L2", (16.0, 16.0, 16.0), id="3-phase car: every phase"),
        pytest.param(3, 1, "L2L3L1", (0.0, 16.0, 0.0), id="3-phase car on a 1-phase EVSE"),
    ],
)
def test_the_draw_lands_on_the_grid_phases_the_rotation_names(
        clock: ManualClock, car_phases: int, evse_phases: int, rotation: str,
        grid: tuple[float, float, float]) -> None:
    sim = evse_with(clock, SimulatedCar(phases=car_phases), evse_phases=evse_phases,
                    rotation=rotation)
    sim.step(1.0)
    assert sim.grid_currents_a() == grid
    meter = sim.measurement()  # the EVSE's own meter counts its own phases, before rotation
    assert meter.current_A is not None and meter.current_A.L1 == 16.0


def test_a_charger_that_cannot_switch_ignores_a_one_phase_instruction(clock: ManualClock) -> None:
    fixed = evse_with(clock, SimulatedCar(phases=3), phases=1, switchable=False)
    fixed.step(1.0)
    assert fixed.phases_used == 3
    assert fixed.grid_currents_a() == (16.0, 16.0, 16.0)


def test_the_car_pauses_below_its_own_minimum(clock: ManualClock) -> None:
    sim = evse_with(clock, SimulatedCar(min_current_a=8.0), amps=7.0)
    sim.step(1.0)
    assert (sim.current_a, sim.phases_used) == (0.0, 0)


def lower_limit(sim: SimulatedEvse, clock: ManualClock, amps: float) -> None:
    sim.receiver.apply(EnforcedLimits(
        uuid="e1", valid_until=clock.now() + timedelta(hours=1),
        limits_root_side=LimitsRes(ac_max_current_A=amps, ac_max_phase_count=3)))


def test_a_lagging_car_follows_a_new_limit_late(clock: ManualClock) -> None:
    sim = evse_with(clock, SimulatedCar(phases=1, lag_s=2.0))
    drawn = []
    for second in range(6):
        if second == 2:
            lower_limit(sim, clock, 8.0)
        sim.step(1.0)
        clock.advance(1.0)
        drawn.append(sim.current_a)
    # each second follows the limit read two seconds earlier (none before the first one)
    assert drawn == [0.0, 0.0, 16.0, 16.0, 8.0, 8.0]


def test_a_fractional_lag_splits_the_step_energy(clock: ManualClock) -> None:
    sim = evse_with(clock, SimulatedCar(phases=1, lag_s=0.5))
    sim.step(1.0)  # 0.5 s of nothing, then 16 A
    assert sim.import_wh == pytest.approx(16.0 * 230.0 * 0.5 / 3600.0)
    assert sim.current_a == 16.0


def test_a_new_car_starts_afresh(clock: ManualClock) -> None:
    sim = evse_with(clock, SimulatedCar())
    sim.step(60.0)
    sim.plug(None)
    assert (sim.state, sim.current_a) == (EvseState.Unplugged, 0.0)
    kept = sim.import_wh
    sim.plug(SimulatedCar(phases=1))
    sim.step(60.0)
    assert sim.import_wh > kept  # the register keeps counting across sessions
    assert sim.grid_currents_a() == (16.0, 0.0, 0.0)


def test_household_steps_add_to_their_phase_while_on() -> None:
    step = ApplianceStep(NOW, duration_s=600.0, phase=1, amps=9.0)
    house = Household(scale=0.0, steps=[step])
    assert house.current_a(NOW - timedelta(seconds=1)) == (0.0, 0.0, 0.0)
    assert house.current_a(NOW) == (0.0, 9.0, 0.0)
    assert house.current_a(NOW + timedelta(seconds=600)) == (0.0, 0.0, 0.0)
    assert house.steps_between(NOW - timedelta(seconds=1), NOW)
    assert house.steps_between(NOW + timedelta(seconds=599), NOW + timedelta(seconds=600))
    assert not house.steps_between(NOW + timedelta(seconds=1), NOW + timedelta(seconds=599))
    scaled = Household(scale=2.0).current_a(NOW)
    assert scaled == pytest.approx(tuple(2 * x for x in household_load_profile(NOW)))
