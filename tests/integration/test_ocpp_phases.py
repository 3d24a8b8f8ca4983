"""OCPP MeterValues ``Current.Import`` per phase (1.6J and 2.0.1) tell the manager a car's phases.

A real ``ocpp`` charge point on 127.0.0.1 charges a car that draws on one phase only; once the
EVSE has offered three phases long enough, the manager budgets it as a one-phase load.
"""

from __future__ import annotations

from adapters.ocpp.csms import CsmsServer
from adapters.ocpp.versions import CsmsWire, Sample
from energytree.clock import ManualClock
from energytree.manager import EnergyManager
from tests.integration.test_ocpp_csms import (  # noqa: F401 - fixtures
    WIRES,
    charger,
    clock,
    enforced_a,
    manager,
    server,
    until,
)


@WIRES
async def test_a_one_phase_car_seen_in_meter_values_is_budgeted_on_one_phase(
    server: CsmsServer, manager: EnergyManager, clock: ManualClock, wire: CsmsWire,  # noqa: F811
) -> None:
    async with charger(server, "A", wire, password="secret-a") as cp:
        await cp.boot()
        await cp.start_transaction(1)
        await until(lambda: enforced_a(manager, "A-1") == 16.0)
        clock.advance(manager.options.response_s + 1)  # three phases offered long enough
        manager.notify()
        await until(lambda: manager.status().evses[0].phases == 3)
        await cp.meter(1, [Sample(16, "Current.Import", "A", "L1"),
                           *(Sample(0, "Current.Import", "A", p) for p in ("L2", "L3"))])
        await until(lambda: manager.car_phases("A-1") == (0,))
        await until(lambda: manager.status().evses[0].phases == 1)
        status = manager.status().evses[0]
        assert (status.uuid, status.drawn_phases, status.current_a) == ("A-1", 1, 16.0)
