"""The CSMS linked to the gateway: supplier commands reach a real OCPP charger, and its
sessions' id tags reach the session log (1.6 and 2.0.1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ocpp.routing import on
from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action

from adapters.ocpp.csms import CsmsServer
from adapters.ocpp.forward import ChargerCommands
from adapters.ocpp.versions import CSMS16, CsmsWire
from energytree.manager import EnergyManager
from energytree.sessions import (
    Database,
    MeterReading,
    SessionLog,
    SessionTracker,
    StateChanged,
)
from energytree.types import EvseState
from tests.integration import test_ocpp_csms as base
from tests.integration.test_ocpp_csms import WIRES, charger, clock, manager, server, until

__all__ = ["clock", "manager", "server"]  # the fixtures, shared with the CSMS tests


class Embedded:
    """The fallback for EVSEs that are not on an OCPP charger."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def remote_start(self, evse: str, id_tag: str) -> bool:
        self.calls.append(("start", evse))
        return True

    async def remote_stop(self, evse: str) -> bool:
        self.calls.append(("stop", evse))
        return True

    async def reset(self, evse: str, hard: bool) -> bool:
        return True

    async def get_configuration(self, evse: str, keys: Sequence[str]) -> dict[str, str]:
        return {}


class RemoteCharger(base.ChargerSim):
    """A charger that records the remote commands it gets and accepts them."""

    received: list[str]

    @on(Action16.remote_start_transaction)
    async def on_remote_start(self, id_tag: str, **payload: Any) -> Any:
        self.received.append(f"start {id_tag} {payload.get('connector_id')}")
        return self.version.call_result.RemoteStartTransaction(status="Accepted")

    @on(Action.request_start_transaction)
    async def on_request_start(self, id_token: dict[str, Any], **payload: Any) -> Any:
        self.received.append(f"start {id_token['id_token']} {payload.get('evse_id')}")
        return self.version.call_result.RequestStartTransaction(status="Accepted")

    @on(Action16.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id: int, **payload: Any) -> Any:
        self.received.append(f"stop {transaction_id}")
        return self.version.call_result.RemoteStopTransaction(status="Accepted")

    @on(Action.request_stop_transaction)
    async def on_request_stop(self, transaction_id: str, **payload: Any) -> Any:
        self.received.append(f"stop {transaction_id}")
        return self.version.call_result.RequestStopTransaction(status="Accepted")


@WIRES
async def test_commands_reach_the_charger_and_others_stay_embedded(
    server: CsmsServer, manager: EnergyManager, wire: CsmsWire, monkeypatch: Any
) -> None:
    monkeypatch.setattr(base, "ChargerSim", RemoteCharger)
    RemoteCharger.received = []
    embedded = Embedded()
    commands = ChargerCommands(server, embedded)
    assert not await commands.remote_start("A-1", "TAG")  # charger A is offline: Rejected
    async with charger(server, "A", wire, password="secret-a") as cp:
        await cp.boot()
        await until(lambda: "A" in server.sessions)
        assert await commands.remote_start("A-1", "CARD-7")
        started = await cp.start_transaction(1)
        assert await commands.remote_stop("A-1")
        tx = started.transaction_id if wire is CSMS16 else "tx-1"
        assert cp.received == ["start CARD-7 1", f"stop {tx}"]
        assert await commands.reset("A-1", hard=False) is False  # the sim refuses Reset
    assert await commands.remote_start("somewhere-else", "TAG")  # not on a charger
    assert embedded.calls == [("start", "somewhere-else")]


@WIRES
async def test_id_tags_of_charger_sessions_reach_the_session_log(
    server: CsmsServer, manager: EnergyManager, wire: CsmsWire, tmp_path: Any
) -> None:
    log = SessionLog(Database(tmp_path / "sessions.sqlite"))
    server.event_sink = tracker = SessionTracker(log)
    async with charger(server, "A", wire, password="secret-a") as cp:
        await cp.boot()
        await cp.start_transaction(1, meter_wh=1000)
        # what the service's session loop adds from the manager: the state and the register
        tracker.feed(StateChanged("A-1", EvseState.Charging, base.NOW))
        tracker.feed(MeterReading("A-1", 1000.0, 0.0, base.NOW))
        [session] = await until(lambda: log.sessions())
        assert (session.evse, session.id_tag) == ("A-1", "TAG")
