"""Unused allowance: lent in bounded steps while a car draws less, taken back within the room."""

from __future__ import annotations

import pytest

from energytree.clock import ManualClock
from energytree.manager import EnergyManager, ManagerOptions
from energytree.plan import instant_plan
from energytree.types import PhaseValues, Powermeter
from tests.builders import NOW, evse, node


def drawing(amps: float) -> Powermeter:
    return Powermeter(current_A=PhaseValues(L1=amps, L2=amps, L3=amps))


def grants(manager: EnergyManager) -> dict[str, float]:
    return {x.uuid: x.limits_root_side.ac_max_current_A or 0.0
            for x in manager.enforced_limits if x.limits_root_side is not None}


@pytest.fixture
def manager() -> EnergyManager:
    request = node("grid", evse("a", 16), evse("b", 16), max_a=20)
    return EnergyManager(request, planner=instant_plan, clock=ManualClock(NOW),
                         options=ManagerOptions(response_s=3.0))


def step(manager: EnergyManager, a_draws: float) -> dict[str, float]:
    """One second: the car at ``a`` reports its draw, the manager ticks."""
    manager.clock.advance(1)  # type: ignore[attr-defined]
    manager.report_measurement("a", drawing(a_draws))
    manager.tick()
    return grants(manager)


async def test_a_car_drawing_less_lends_the_rest_and_takes_it_back(manager) -> None:
    await manager.replan()
    manager.tick()
    assert grants(manager) == {"a": 10.0, "b": 10.0}
    seen = [step(manager, 4.0) for _ in range(8)]  # a's car takes 4 A of its 10
    assert [x["a"] for x in seen] == [10.0, 10.0, 10.0, 8.0, 6.0, 6.0, 6.0, 6.0]
    assert [x["b"] for x in seen] == [10.0, 10.0, 10.0, 12.0, 14.0, 14.0, 14.0, 14.0]
    reason = manager.status().evses[0].reason
    assert reason == "unused: drawing 4.0 A, the rest shared with the others"

    history = [seen[-1]["b"]] * 3  # b's car may draw any grant of the last 3 s
    back = []
    for _ in range(5):  # a's car ramps up to its cap: b is cut at once, a rises with the room
        now = step(manager, 6.0)
        assert now["a"] + max(*history, now["b"]) <= 20.0 + 1e-9
        history = [*history[1:], now["b"]]
        back.append(now)
    assert back[0] == {"a": 6.0, "b": 10.0}  # cut at once; a waits for b's car
    assert back[-1] == {"a": 10.0, "b": 10.0}  # and has its share back once b's car follows
    assert manager.status().evses[0].reason != "" and manager.car_phases("a") is None


async def test_without_a_fresh_measurement_nothing_is_lent(manager) -> None:
    await manager.replan()
    manager.tick()
    for _ in range(5):
        step(manager, 4.0)
    manager.clock.advance(10)  # type: ignore[attr-defined]  # the meter went quiet
    manager.tick()
    assert grants(manager) == {"a": 10.0, "b": 10.0}
