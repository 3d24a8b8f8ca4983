"""Embed energytree as the energy manager of a charger stack.

The stack publishes its tree as an EnergyFlowRequest (EVerest's type), reports states and
meter readings, and applies the EnforcedLimits it receives; each EVSE falls back to 0 A if
no fresh limit arrives before ``valid_until``. Run: ``python examples/embedding/charger_stack.py``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from energytree import (
    EnergyFlowRequest,
    EnergyManager,
    EvseState,
    LimitReceiver,
    LimitsReq,
    NodeType,
    OptimizerTarget,
    ScheduleReqEntry,
)
from optimizer import optimise


def evse(uuid: str) -> EnergyFlowRequest:
    limits = LimitsReq(ac_max_current_A=32, ac_min_current_A=6, ac_max_phase_count=3)
    entry = ScheduleReqEntry(timestamp=datetime.now(UTC), limits_to_root=limits,
                             limits_to_leaves=LimitsReq())
    return EnergyFlowRequest(uuid=uuid, node_type=NodeType.Evse, schedule_import=[entry],
                             evse_state=EvseState.Charging)


def station() -> EnergyFlowRequest:
    fuse = ScheduleReqEntry(timestamp=datetime.now(UTC),
                            limits_to_root=LimitsReq(ac_max_current_A=40),
                            limits_to_leaves=LimitsReq())
    return EnergyFlowRequest(uuid="station", node_type=NodeType.Generic,
                             children=[evse("left"), evse("right")], schedule_import=[fuse])


async def main() -> None:
    receivers = {uuid: LimitReceiver(uuid) for uuid in ("left", "right")}
    async with EnergyManager(station(), planner=optimise) as manager:
        manager.set_target("left", OptimizerTarget(energy_amount_needed=20))
        updates = 0
        async for limits in manager.subscribe():
            for item in limits:
                receivers[item.uuid].apply(item)
            print({uuid: f"{r.current_a():.1f} A" for uuid, r in receivers.items()})
            updates += 1
            if updates == 3:
                break


if __name__ == "__main__":
    asyncio.run(main())
