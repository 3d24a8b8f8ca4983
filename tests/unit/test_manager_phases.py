"""Phases in the live tick: 1-phase limits, chargers that cannot switch, measured cars, holds."""

from __future__ import annotations

import pytest

from energytree.clock import ManualClock
from energytree.manager import EnergyManager, ManagerOptions, MeterFeed
from energytree.phases import SwitchingOptions
from energytree.plan import instant_plan
from energytree.types import EvseState, ExternalLimits, LimitsRes, PhaseValues, Powermeter
from tests.builders import NOW, entry, evse, node

ONE_PHASE_6KW = ExternalLimits(schedule_import=[entry(NOW, None, 6_000.0,
                                                      ac_max_phase_count=1)])


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def sent(manager: EnergyManager) -> dict[str, LimitsRes]:
    return {x.uuid: x.limits_root_side for x in manager.enforced_limits
            if x.limits_root_side is not None}


def pair(manager: EnergyManager, uuid: str) -> tuple[int, float]:
    res = sent(manager)[uuid]
    return res.ac_max_phase_count or 0, res.ac_max_current_A or 0.0


async def tick(manager: EnergyManager) -> None:
    await manager.replan()
    manager.tick()


def amps_on(l1: float = 0.0, l2: float = 0.0, l3: float = 0.0) -> Powermeter:
    return Powermeter(current_A=PhaseValues(L1=l1, L2=l2, L3=l3),
                      power_W=PhaseValues(total=(l1 + l2 + l3) * 230.0))


@pytest.mark.parametrize(("switchable", "expected"), [
    pytest.param(True, (1, 26.08), id="switchable: the whole 6 kW on one phase"),
    pytest.param(False, (3, 8.69), id="cannot switch: 3 x I x 230 V <= 6 kW"),
])
async def test_a_one_phase_watt_limit(clock, switchable, expected) -> None:
    request = node("grid", evse("a", 32, switchable=switchable), max_a=63)
    manager = EnergyManager(request, planner=instant_plan, clock=clock)
    manager.set_external_limits("ocpp", "grid", ONE_PHASE_6KW)
    await tick(manager)
    assert pair(manager, "a") == expected
    clock.advance(1)
    manager.tick()  # and the live tick keeps it (the hint is clipped to the slot's phases)
    assert pair(manager, "a") == expected


async def test_a_one_phase_car_is_budgeted_on_its_grid_phase(clock) -> None:
    """A 1-phase car on a 3-phase EVSE (rotation L2L3L1) leaves L1 and L3 to the other."""
    request = node("grid", evse("a", 32, rotation="L2L3L1"), evse("b", 32), max_a=20)
    manager = EnergyManager(request, planner=instant_plan, clock=clock,
                            options=ManagerOptions(response_s=5.0))
    await tick(manager)
    assert pair(manager, "a") == (3, 10.0) and pair(manager, "b") == (3, 10.0)
    clock.advance(6)  # the EVSE has offered three phases long enough
    manager.tick()
    manager.report_measurement("a", amps_on(l1=10.0))  # its L1 is grid L2
    assert manager.car_phases("a") == (0,)
    await tick(manager)
    assert pair(manager, "a") == (1, 10.0)  # L2: 10 + 10 = 20 A
    assert pair(manager, "b") == (3, 10.0)
    status = {x.uuid: x for x in manager.status().evses}
    assert status["a"].drawn_phases == 1 and status["a"].drawn_w == pytest.approx(2_300.0)
    assert status["a"].power_w == pytest.approx(2_300.0)  # granted 10 A on one phase

    manager.report_measurement("a", amps_on(10.0, 10.0, 10.0))  # a car on three after all
    assert manager.car_phases("a") is None
    manager.report_measurement("a", amps_on(l1=10.0))
    manager.set_evse_state("a", EvseState.Unplugged)  # a new session: configuration again
    assert manager.car_phases("a") is None


async def test_no_switch_on_a_safe_current_start_or_a_rotation_pause(clock) -> None:
    """Three switchable EVSEs on the 6 A safe current: nobody is moved to one phase."""
    request = node("grid", *[evse(x, 16, switchable=True) for x in "abc"], max_a=63)
    manager = EnergyManager(request, planner=instant_plan, clock=clock, has_meter=True,
                            options=ManagerOptions(safe_current_a=6.0))
    await tick(manager)
    assert sorted(pair(manager, x) for x in "abc") == [(3, 0.0), (3, 0.0), (3, 6.0)]
    manager.report_grid_meter(MeterFeed((10.0, 10.0, 10.0), None, "NORMAL"))
    manager.tick()
    assert [pair(manager, x) for x in "abc"] == [(3, 16.0)] * 3


async def test_the_hold_is_in_the_reason(clock) -> None:
    options = ManagerOptions(switching=SwitchingOptions(time_hysteresis_s=300.0))
    request = node("grid", evse("a", 16, switchable=True), max_a=63)
    manager = EnergyManager(request, planner=instant_plan, clock=clock, options=options)
    manager.set_external_limits("dso", "grid", ExternalLimits(schedule_import=[
        entry(NOW, None, 3_000.0)]))
    await tick(manager)
    assert pair(manager, "a") == (1, 13.04)
    manager.set_external_limits("dso", "grid", ExternalLimits(schedule_import=[
        entry(NOW, None, 11_000.0)]))
    await tick(manager)
    assert pair(manager, "a") == (1, 16.0)
    assert manager.status().evses[0].reason.endswith("phases: held at 1 until 12:05 UTC")
    clock.advance(300)
    manager.tick()
    assert pair(manager, "a") == (3, 15.94)
