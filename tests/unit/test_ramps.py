"""A rise waits while another car behind the same fuse may still be following its own rise."""

from __future__ import annotations

from energytree.clock import ManualClock
from energytree.manager import EnergyManager, ManagerOptions
from energytree.plan import instant_plan
from energytree.ramps import WAITING
from energytree.types import EvseState, PhaseValues, Powermeter
from tests.builders import NOW, evse, node

NOTHING = Powermeter(current_A=PhaseValues(L1=0.0, L2=0.0, L3=0.0))


def grants(manager: EnergyManager) -> dict[str, float]:
    return {x.uuid: x.limits_root_side.ac_max_current_A or 0.0
            for x in manager.enforced_limits if x.limits_root_side is not None}


async def test_an_arrival_waits_for_a_metered_car_that_has_not_yet_followed_its_rise() -> None:
    """The car at ``a`` was just granted 16 A and its meter still reads 0 A: it may draw the
    16 A any moment, so ``b`` arriving behind the same 16 A fuse must not be given room."""
    fuse = node("fuse", evse("a", 16), evse("b", 16), max_a=16)
    manager = EnergyManager(node("grid", fuse, max_a=63), planner=instant_plan,
                            clock=ManualClock(NOW), options=ManagerOptions(response_s=5.0))
    for uuid in ("a", "b"):
        manager.set_evse_state(uuid, EvseState.Unplugged)
    await manager.replan()
    manager.tick()
    manager.clock.advance(1)  # type: ignore[attr-defined]
    manager.set_evse_state("a", EvseState.Charging)
    await manager.replan()
    manager.tick()
    assert grants(manager)["a"] == 16.0

    manager.clock.advance(1)  # type: ignore[attr-defined]
    manager.report_measurement("a", NOTHING)  # its car follows late: nothing flows yet
    manager.set_evse_state("b", EvseState.Charging)
    await manager.replan()
    manager.tick()
    assert grants(manager)["b"] == 0.0
    assert manager.status().evses[1].reason.startswith(WAITING)
