"""The live tick's admission hysteresis through the manager: a meter budget wavering at the
edge of one more minimum neither starts and stops a car nor cuts the others for it."""

from __future__ import annotations

from energytree.allocator import NO_MARGIN
from energytree.clock import ManualClock
from energytree.manager import EnergyManager, ManagerOptions, MeterFeed
from energytree.plan import instant_plan
from energytree.types import EvseState
from tests.builders import NOW, evse, node

CONNECTION_A, MARGIN_A = 25.0, 1.0


def grants(manager: EnergyManager) -> dict[str, float]:
    return {x.uuid: x.limits_root_side.ac_max_current_A or 0.0
            for x in manager.enforced_limits if x.limits_root_side is not None}


async def test_a_third_car_at_the_edge_waits_and_nothing_turns() -> None:
    """Three 1-phase 8 A EVSEs on L1 of a 25 A connection: 24 A after the margin, less a
    household that wavers between 0.00 and 0.02 A. Two cars charge; the third arrives.
    Its minimum fits at 24.00 A and not at 23.98 A: without hysteresis the two others were
    cut to 8 A for it at every other reading. It waits, with the reason, and the two others
    share the budget: the plan's shares (8.33 A each, counting on the third) no longer
    hold them when the live budget leaves an EVSE out."""
    manager = EnergyManager(
        node("grid", *[evse(x, 16, 8, phases=1) for x in "abc"], max_a=CONNECTION_A),
        planner=instant_plan, clock=ManualClock(NOW), has_meter=True,
        options=ManagerOptions(response_s=1.0, meter_period_s=1.0, meter_margin_a=MARGIN_A))
    manager.set_evse_state("c", EvseState.Unplugged)
    await manager.replan()
    history, reasons = [], set()
    for t in range(60):
        if t == 10:
            manager.set_evse_state("c", EvseState.Charging)
            await manager.replan()
        manager.clock.advance(1)  # type: ignore[attr-defined]
        drawn = sum(grants(manager).values())  # the cars follow within a second
        household = 0.02 * (t % 2)
        manager.report_grid_meter(MeterFeed((household + drawn, household, household),
                                            None, "NORMAL"))
        manager.tick()
        history.append(grants(manager))
        reasons.add(manager.status().evses[2].reason) if t >= 20 else None
    late = history[20:]
    # a and b share the budget (about 12 A each); they are not cut to 8 A for c, nor held
    # at the 8.33 A the plan meant for them when it counted on c
    assert min(min(g["a"], g["b"]) for g in late) > 11.0, late
    assert all(g["c"] == 0.0 for g in late), [g["c"] for g in late]
    assert NO_MARGIN in reasons  # at 24.00 A (at 23.98 A it does not fit at all)


async def test_evses_the_live_budget_leaves_out_do_not_strand_the_plans_shares() -> None:
    """The plan shares the 25 A connection among three 8 A EVSEs (8.33 A each); a 3 A
    household leaves the meter budget 21 A, two minimums' worth. The two served EVSEs share
    all of it, not the 16.7 A the plan meant for them."""
    manager = EnergyManager(
        node("grid", *[evse(x, 16, 8, phases=1) for x in "abc"], max_a=CONNECTION_A),
        planner=instant_plan, clock=ManualClock(NOW), has_meter=True,
        options=ManagerOptions(response_s=1.0, meter_period_s=1.0, meter_margin_a=MARGIN_A))
    await manager.replan()
    for _ in range(10):
        manager.clock.advance(1)  # type: ignore[attr-defined]
        drawn = sum(grants(manager).values())
        manager.report_grid_meter(MeterFeed((3.0 + drawn, 3.0, 3.0), None, "NORMAL"))
        manager.tick()
    granted = sorted(grants(manager).values())
    assert granted[0] == 0.0 and granted[1:] == [10.5, 10.5]
