"""A rise waits while another car behind the same fuse may still be following its own rise."""

from __future__ import annotations

from energytree.clock import ManualClock
from energytree.manager import EnergyManager, ManagerOptions, MeterFeed
from energytree.plan import instant_plan
from energytree.ramps import WAITING
from energytree.types import EvseState, PhaseValues, Powermeter
from tests.builders import NOW, evse, node

NOTHING = Powermeter(current_A=PhaseValues(L1=0.0, L2=0.0, L3=0.0))


def behind_a_fuse(fuse_a: float, response_s: float, b_min_a: float = 6.0) -> EnergyManager:
    """EVSEs ``a`` and ``b`` (16 A each) behind one fuse of a 63 A grid, planned instantly."""
    fuse = node("fuse", evse("a", 16), evse("b", 16, min_a=b_min_a), max_a=fuse_a)
    return EnergyManager(node("grid", fuse, max_a=63), planner=instant_plan,
                         clock=ManualClock(NOW), options=ManagerOptions(response_s=response_s))


async def step(manager: EnergyManager, seconds: float = 1.0, **states: EvseState) -> None:
    """``seconds`` on, the EVSEs report ``states``, a re-plan, a tick."""
    manager.clock.advance(seconds)  # type: ignore[attr-defined]
    for uuid, state in states.items():
        manager.set_evse_state(uuid, state)
    await manager.replan()
    manager.tick()


def grants(manager: EnergyManager) -> dict[str, float]:
    return {x.uuid: x.limits_root_side.ac_max_current_A or 0.0
            for x in manager.enforced_limits if x.limits_root_side is not None}


async def test_an_arrival_waits_for_a_metered_car_that_has_not_yet_followed_its_rise() -> None:
    """The car at ``a`` was just granted 16 A and its meter still reads 0 A: it may draw the
    16 A any moment, so ``b`` arriving behind the same 16 A fuse must not be given room."""
    manager = behind_a_fuse(16.0, response_s=5.0)
    await step(manager, 0, a=EvseState.Unplugged, b=EvseState.Unplugged)
    await step(manager, a=EvseState.Charging)
    assert grants(manager)["a"] == 16.0

    manager.clock.advance(1)  # type: ignore[attr-defined]
    manager.report_measurement("a", NOTHING)  # its car follows late: nothing flows yet
    manager.set_evse_state("b", EvseState.Charging)
    await manager.replan()
    manager.tick()
    assert grants(manager)["b"] == 0.0
    assert manager.status().evses[1].reason.startswith(WAITING)


async def test_a_car_that_pauses_itself_does_not_hide_the_household() -> None:
    """``a``'s car refuses its grant (PausedEV); the meter shows the household and ``b``.
    Counting ``a``'s grant as drawn would make the household look that much smaller and
    leave ``a`` + ``b`` more than the connection has; counting it as 0 keeps them within."""
    household_a, margin_a, connection_a = 10.0, 1.0, 32.0
    manager = EnergyManager(
        node("grid", evse("a", 16), evse("b", 32), max_a=connection_a), planner=instant_plan,
        clock=ManualClock(NOW), has_meter=True,
        options=ManagerOptions(response_s=1.0, meter_period_s=1.0, meter_margin_a=margin_a))
    await manager.replan()
    manager.set_evse_state("a", EvseState.PausedEV)
    for _ in range(20):
        manager.clock.advance(1)  # type: ignore[attr-defined]
        drawn = household_a + grants(manager).get("b", 0.0)  # b's car follows, a's takes nothing
        manager.report_grid_meter(MeterFeed((drawn,) * 3, None, "NORMAL"))
        manager.tick()
    granted = grants(manager)
    assert granted["a"] > 0  # a is still offered current: its car may start any moment
    assert granted["a"] + granted["b"] <= connection_a - margin_a - household_a + 0.01


def drawing(current_a: float) -> Powermeter:
    return Powermeter(current_A=PhaseValues(L1=current_a, L2=current_a, L3=current_a))


async def test_a_car_that_is_not_charging_waits_for_its_minimum_while_others_follow_a_cut() -> None:
    """``a``'s car refuses its offer (PausedEV), so it is offered more, and ``b`` is cut for
    it; ``b``'s car follows its cut late. ``a`` was granted current a moment ago, but its car
    draws nothing: starting it at its new minimum before ``b`` has followed would overload
    the fuse. It waits (0 A) until the room is there, then gets the minimum it needs."""
    fuse_a = 12.0
    manager = behind_a_fuse(fuse_a, response_s=5.0, b_min_a=1.0)
    manager.set_evse_state("b", EvseState.Charging)
    b_draws = 0.0
    states = ["PausedEVSE", "PausedEVSE", "PausedEV", "PausedEVSE", "PausedEV", "PausedEVSE"]
    for step, state in enumerate(states + ["PausedEVSE"] * 3):
        manager.clock.advance(1)  # type: ignore[attr-defined]
        manager.set_evse_state("a", EvseState(state))
        follows = step < 1 or step >= len(states)  # b's car follows rises, and its cut late
        manager.report_measurement("b", drawing(b_draws))
        await manager.replan()
        manager.tick()
        granted = grants(manager)
        assert granted["a"] + b_draws <= fuse_a + 1e-6, (step, granted, b_draws)
        b_draws = granted["b"] if follows else max(b_draws, granted["b"])
    assert granted["a"] >= 10.0  # it refused 8.5 A: the next known minimum, 10 A
