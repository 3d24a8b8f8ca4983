"""The CSMS against ``ocpp`` library chargers on 127.0.0.1, with a real EnergyManager.

Every charger test runs for OCPP 1.6 and 2.0.1: boot, status, transactions, meter values into
the manager, profiles that carry the manager's limit (and are not re-sent unchanged), the
retry at stack level 0, refused handshakes, offline reservation and invalid messages.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ocpp.charge_point import ChargePoint
from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from adapters.ocpp import csms
from adapters.ocpp.chargers import ChargerConfig, CsmsConfig, offline_source
from adapters.ocpp.csms import CsmsServer
from adapters.ocpp.profiles import ChargingProfile, RateUnit, parse_profile
from adapters.ocpp.versions import CSMS16, CSMS201, CsmsWire, Sample
from energytree.clock import ManualClock
from energytree.manager import EnergyManager, ManagerOptions
from energytree.plan import instant_plan
from energytree.site import EvseConfig, GridConfig, SiteConfig, site_request
from energytree.types import EvseState, Powermeter

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
GUARD_S = 10  # a hang guard, not a timing assertion
WIRES = pytest.mark.parametrize("wire", [CSMS16, CSMS201], ids=["1.6", "2.0.1"])
SETTINGS = {"max_stack_level": "2", "max_periods": "5", "rate_units": "A"}
RATE_UNITS = {"1.6": "Current,Power", "2.0.1": "A,W"}


def iso(t: datetime = NOW) -> str:
    return t.isoformat().replace("+00:00", "Z")


class ChargerSim(ChargePoint):
    """A charger: answers the CSMS' reads and profiles; refuses stack levels above a maximum."""

    def __init__(self, cp_id: str, ws: Any, wire: CsmsWire, settings: dict[str, str],
                 max_level: int | None) -> None:
        super().__init__(cp_id, ws, response_timeout=GUARD_S)
        v = wire.version
        self._call, self._call_result, self._ocpp_version = v.call, v.call_result, v.name
        self.wire, self.version = wire, v
        self.settings = {wire.settings[k]: RATE_UNITS[v.name] if k == "rate_units" else value
                         for k, value in settings.items()}
        self.max_level = max_level
        self.profiles: asyncio.Queue[ChargingProfile] = asyncio.Queue()
        self.refused: list[int] = []
        self.seq = 0

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, **payload: Any) -> Any:
        v = self.version
        connector, wire = payload[v.connector_field], payload[v.profile_field]
        if self.max_level is not None and wire["stack_level"] > self.max_level:
            self.refused.append(wire["stack_level"])
            return v.call_result.SetChargingProfile(status="Rejected")
        self.profiles.put_nowait(parse_profile(v, connector, wire))
        return v.call_result.SetChargingProfile(status="Accepted")

    @on(Action16.get_configuration)
    async def on_get_configuration(self, key: list[str], **payload: Any) -> Any:
        known = [{"key": k, "readonly": True, "value": self.settings[k]}
                 for k in key if k in self.settings]
        unknown = [k for k in key if k not in self.settings]
        return self.version.call_result.GetConfiguration(
            configuration_key=known, unknown_key=unknown or None)

    @on(Action.get_variables)
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]],
                               **payload: Any) -> Any:
        results = []
        for item in get_variable_data:
            name = f"{item['component']['name']}.{item['variable']['name']}"
            found = {"attribute_status": "Accepted", "attribute_value": self.settings[name]} \
                if name in self.settings else {"attribute_status": "UnknownVariable"}
            results.append({**found, "component": item["component"],
                            "variable": item["variable"]})
        return self.version.call_result.GetVariables(get_variable_result=results)

    async def send(self, request: Any, **kwargs: Any) -> Any:
        return await self.call(request, suppress=False, **kwargs)

    async def boot(self) -> Any:
        return await self.send(self.version.boot_notification("Probe", "Sim"))

    async def status(self, connector: int, status: str) -> Any:
        call = self.version.call
        if self.version.name == "1.6":
            return await self.send(call.StatusNotification(
                connector_id=connector, error_code="NoError", status=status, timestamp=iso()))
        return await self.send(call.StatusNotification(
            timestamp=iso(), connector_status=status, evse_id=connector, connector_id=1))

    async def start_transaction(self, connector: int, meter_wh: int = 1000) -> Any:
        call = self.version.call
        if self.version.name == "1.6":
            return await self.send(call.StartTransaction(
                connector_id=connector, id_tag="TAG", meter_start=meter_wh, timestamp=iso()))
        begin = self.version.meter_values(
            connector, iso(), [Sample(meter_wh, "Energy.Active.Import.Register", "Wh")])
        return await self.send(self._event("Started", "Authorized", connector,
                                           {"transaction_id": "tx-1", "charging_state": "Charging"},
                                           id_token={"id_token": "TAG", "type": "ISO14443"},
                                           meter_value=begin.meter_value))

    def _event(self, kind: str, trigger: str, connector: int, info: dict[str, Any],
               **extra: Any) -> Any:
        self.seq += 1
        return self.version.call.TransactionEvent(
            event_type=kind, timestamp=iso(), trigger_reason=trigger, seq_no=self.seq,
            transaction_info=info, evse={"id": connector, "connector_id": 1}, **extra)

    async def meter(self, connector: int, samples: list[Sample]) -> Any:
        return await self.send(self.version.meter_values(connector, iso(), samples))

    async def next_profile(self) -> ChargingProfile:
        async with asyncio.timeout(GUARD_S):
            return await self.profiles.get()


async def until(check: Callable[[], Any]) -> Any:
    """Poll ``check`` until it returns something truthy (guarded against hangs)."""
    async with asyncio.timeout(GUARD_S):
        while not (value := check()):
            await asyncio.sleep(0.02)
        return value


def evse_request(manager: EnergyManager, uuid: str) -> Any:
    """The EVSE's request as the manager sees it now (live state and measurement laid over)."""
    tree = manager.preview({}).problem.tree
    return tree.evses[tree.evse_index(uuid)].request


def enforced_a(manager: EnergyManager, uuid: str) -> float | None:
    for limits in manager.enforced_limits:
        if limits.uuid == uuid and limits.limits_root_side is not None:
            return limits.limits_root_side.ac_max_current_A
    return None


async def publications(manager: EnergyManager, count: int) -> None:
    """Wait until the manager has published ``count`` more times."""
    stream = manager.subscribe()
    async with asyncio.timeout(GUARD_S):
        for _ in range(count + 1):  # the first one is what is in force already
            await anext(stream)
    await stream.aclose()


def site() -> SiteConfig:
    evses = [EvseConfig(evse=uuid, max_current_A=16, state=EvseState.Unplugged)
             for uuid in ("A-1", "garage", "R-1")]
    return SiteConfig(grid=GridConfig(max_current_A=24, children=evses))


CONFIG = CsmsConfig(
    port=0, heartbeat_interval_s=60, response_timeout_s=GUARD_S, failsafe_current_a=6,
    chargers=[
        ChargerConfig(id="A", password="secret-a"),
        ChargerConfig(id="B", connectors={1: "garage"}),
        ChargerConfig(id="R"),
    ],
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
async def manager(clock: ManualClock) -> AsyncIterator[EnergyManager]:
    options = ManagerOptions(tick_s=0.05)
    async with EnergyManager(site_request(site(), NOW), planner=instant_plan, clock=clock,
                             options=options) as live:
        yield live


@pytest.fixture
async def server(manager: EnergyManager, clock: ManualClock) -> AsyncIterator[CsmsServer]:
    async with CsmsServer(CONFIG, manager, clock) as csms:
        yield csms


@contextlib.asynccontextmanager
async def charger(server: CsmsServer, cp_id: str, wire: CsmsWire, password: str | None = None,
                  settings: dict[str, str] | None = None, max_level: int | None = None
                  ) -> AsyncIterator[ChargerSim]:
    headers = {}
    if password is not None:
        token = base64.b64encode(f"{cp_id}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    url = f"ws://127.0.0.1:{server.port}/ocpp/{cp_id}"
    async with connect(url, subprotocols=[wire.version.subprotocol],  # type: ignore[list-item]
                       additional_headers=headers, open_timeout=GUARD_S) as ws:
        sim = ChargerSim(cp_id, ws, wire, SETTINGS if settings is None else settings, max_level)
        task = asyncio.create_task(sim.start())
        try:
            yield sim
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@WIRES
async def test_session_feeds_the_manager_and_gets_its_limit(
    server: CsmsServer, manager: EnergyManager, wire: CsmsWire
) -> None:
    async with charger(server, "A", wire, password="secret-a") as cp:
        booted = await cp.boot()
        assert booted.status == "Accepted" and booted.interval == 60
        await cp.status(1, "Available")
        idle = await cp.next_profile()  # at connect: the manager's 0 A for an unplugged EVSE
        assert (idle.connector_id, idle.stack_level, idle.purpose) == (1, 2, "TxDefaultProfile")
        assert idle.schedule.charging_rate_unit is RateUnit.A
        assert [p.limit for p in idle.schedule.periods] == [0.0, 6.0]  # then the failsafe

        started = await cp.start_transaction(1, meter_wh=1000)
        if wire is CSMS16:
            assert isinstance(started.transaction_id, int)
            assert started.id_tag_info["status"] == "Accepted"
        profile = await cp.next_profile()
        assert profile.schedule.periods[0].limit == enforced_a(manager, "A-1") == 16.0
        assert evse_request(manager, "A-1").evse_state in (
            EvseState.PrepareCharging, EvseState.Charging)

        await cp.meter(1, [Sample(11_000, "Power.Active.Import", "W"),
                           Sample(1.5, "Energy.Active.Import.Register", "kWh"),
                           *(Sample(16, "Current.Import", "A", p) for p in ("L1", "L2", "L3"))])
        reading: Powermeter = await until(
            lambda: (m := evse_request(manager, "A-1").energy_usage_root)
            and m.power_W is not None and m)
        assert reading.power_W is not None and reading.power_W.total == 11_000
        assert reading.energy_Wh_import is not None and reading.energy_Wh_import.total == 1500
        assert reading.current_A is not None and reading.current_A.L2 == 16

        await publications(manager, 5)  # the same 16 A, five times
        assert cp.profiles.empty()


@WIRES
async def test_refused_stack_level_is_retried_at_zero(
    server: CsmsServer, manager: EnergyManager, wire: CsmsWire
) -> None:
    settings = {**SETTINGS, "max_stack_level": "3"}
    async with charger(server, "R", wire, settings=settings, max_level=0) as cp:
        await cp.boot()
        first = await cp.next_profile()
        assert (first.stack_level, cp.refused) == (0, [3])
        await cp.start_transaction(1)
        second = await cp.next_profile()  # level 0 from now on: no second refusal
        assert (second.stack_level, second.schedule.periods[0].limit) == (0, 16.0)
        assert cp.refused == [3]


@pytest.mark.parametrize(
    ("cp_id", "password"),
    [("Z", "whatever"), ("A", "wrong"), ("A", None)],
    ids=["unknown id", "wrong password", "no password"],
)
async def test_handshake_refused(server: CsmsServer, cp_id: str, password: str | None) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with charger(server, cp_id, CSMS16, password=password):
            pass
    assert refused.value.response.status_code == 401
    assert not server.sessions


@WIRES
async def test_offline_charger_keeps_its_share_until_it_returns(
    server: CsmsServer, manager: EnergyManager, clock: ManualClock, wire: CsmsWire
) -> None:
    async with charger(server, "A", wire, password="secret-a") as cp:
        await cp.boot()
        await cp.start_transaction(1)
        await until(lambda: enforced_a(manager, "A-1") == 16.0)
        await until(lambda: server.pushed.get("A-1") and server.pushed["A-1"].grant.current_a)
    # gone: A-1 may draw its last 16 A until the lease ends, so the garage gets what is left
    await until(lambda: offline_source("A-1") in manager.leases.leases)
    manager.set_evse_state("garage", EvseState.Charging)
    await until(lambda: enforced_a(manager, "garage") == 8.0)
    assert enforced_a(manager, "A-1") == 16.0

    clock.advance(CONFIG.lease_s + 1)  # the lease ended: the charger is at its failsafe 6 A
    manager.notify()
    await until(lambda: enforced_a(manager, "A-1") == 6.0)

    async with charger(server, "A", wire, password="secret-a") as cp:
        await cp.boot()
        await until(lambda: offline_source("A-1") not in manager.leases.leases)
        await cp.status(1, "Available")
        await until(lambda: enforced_a(manager, "A-1") == 0.0)
        assert enforced_a(manager, "garage") == 16.0


@WIRES
async def test_invalid_messages_get_a_call_error_and_change_nothing(
    server: CsmsServer, manager: EnergyManager, wire: CsmsWire
) -> None:
    call = wire.version.call
    async with charger(server, "A", wire, password="secret-a") as cp:
        await cp.boot()
        if wire is CSMS16:
            bad_status = call.StatusNotification(connector_id=1, error_code="NoError",
                                                 status="Exploded")
        else:
            bad_status = call.StatusNotification(timestamp=iso(), connector_status="Exploded",
                                                 evse_id=1, connector_id=1)
        with pytest.raises(OCPPError):
            await cp.send(bad_status, skip_schema_validation=True)
        bad_meter = wire.version.meter_values(1, iso(), [Sample(5.0, "Power.Active.Import", "W")])
        bad_meter.meter_value[0]["sampled_value"][0]["value"] = "five"
        with pytest.raises(OCPPError):
            await cp.send(bad_meter, skip_schema_validation=True)
        request = evse_request(manager, "A-1")
        assert (request.evse_state, request.energy_usage_root) == (EvseState.Unplugged, None)
        await cp.status(1, "Preparing" if wire is CSMS16 else "Occupied")  # the session lives on
        await until(lambda: evse_request(manager, "A-1").evse_state == EvseState.WaitForAuth)


async def test_reconnect_without_boot_is_served_after_a_grace_time(
    server: CsmsServer, manager: EnergyManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csms, "BOOT_GRACE_S", 0.1)
    async with charger(server, "A", CSMS16, password="secret-a") as cp:
        await cp.status(1, "Charging")  # a 1.6 charger back after a network outage
        while (await cp.next_profile()).schedule.periods[0].limit != 16.0:
            pass  # the 0 A from before the status was applied may come first
        assert enforced_a(manager, "A-1") == 16.0


async def test_silent_manager_sends_the_failsafe_current(
    server: CsmsServer, manager: EnergyManager, clock: ManualClock
) -> None:
    async with charger(server, "A", CSMS201, password="secret-a") as cp:
        await cp.boot()
        await cp.start_transaction(1)
        while (await cp.next_profile()).schedule.periods[0].limit != 16.0:
            pass  # the 0 A of the unplugged EVSE may come first
        await manager.stop()
        clock.advance(11)  # past the last valid_until
        server.sessions["A"].wake.set()
        assert (await cp.next_profile()).schedule.periods[0].limit == 6.0


async def test_restart_pins_chargers_that_have_not_come_back(
    manager: EnergyManager, clock: ManualClock, tmp_path: Path
) -> None:
    config = CONFIG.model_copy(update={"state_path": tmp_path / "chargers.json"})
    async with CsmsServer(config, manager, clock) as server, \
            charger(server, "A", CSMS16, password="secret-a") as cp:
        await cp.boot()
        await cp.start_transaction(1)
        await until(lambda: server.pushed.get("A-1") and server.pushed["A-1"].grant.current_a)
    manager.clear_external_limits(offline_source("A-1"))  # as after a restart of energytree
    async with CsmsServer(config, manager, clock):
        pin = manager.leases.leases[offline_source("A-1")]
        assert pin.limits.schedule_import[0].limits_to_root.ac_min_current_A == 16.0


# ---- links that survive the network: reconnects, restarts, idle disconnects -----------------


async def resume(cp: ChargerSim, tx: int | str, register_wh: float) -> None:
    """What a charger says first when it reconnects mid-transaction without rebooting:
    its status, then a meter value of the running transaction (2.0.1: without ``evse``,
    E01.FR.16)."""
    v = cp.version
    energy = [Sample(register_wh, "Energy.Active.Import.Register", "Wh")]
    if v.name == "1.6":
        await cp.status(1, "Charging")
        values = v.meter_values(1, iso(), energy)
        await cp.send(v.call.MeterValues(connector_id=1, transaction_id=tx,
                                         meter_value=values.meter_value))
        return
    await cp.status(1, "Occupied")
    cp.seq += 1
    values = v.meter_values(1, iso(), energy).meter_value
    await cp.send(v.call.TransactionEvent(
        event_type="Updated", timestamp=iso(), trigger_reason="MeterValuePeriodic",
        seq_no=cp.seq, transaction_info={"transaction_id": tx}, meter_value=values))


def register_of(manager: EnergyManager, uuid: str) -> float | None:
    meter = evse_request(manager, uuid).energy_usage_root
    return None if meter is None or meter.energy_Wh_import is None \
        else meter.energy_Wh_import.total


async def limit_reaches(cp: ChargerSim, amps: float) -> None:
    while (await cp.next_profile()).schedule.periods[0].limit != amps:
        pass  # earlier limits (0 A before the state was applied) may come first


@WIRES
async def test_reconnect_mid_transaction_resumes_at_the_first_message(
    server: CsmsServer, manager: EnergyManager, wire: CsmsWire, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csms, "BOOT_GRACE_S", 3600.0)  # only its first message may wake it
    async with charger(server, "A", wire, password="secret-a") as cp:
        await cp.boot()
        started = await cp.start_transaction(1)
        await limit_reaches(cp, 16.0)
    tx = started.transaction_id if wire is CSMS16 else "tx-1"
    await until(lambda: "A-1" in server.offline)
    assert evse_request(manager, "A-1").evse_state in (  # as it was: offline is not a state
        EvseState.PrepareCharging, EvseState.Charging)

    async with charger(server, "A", wire, password="secret-a") as cp:
        await resume(cp, tx, register_wh=2500)
        await limit_reaches(cp, 16.0)  # its limit again, no boot and no grace time needed
        assert evse_request(manager, "A-1").evse_state == EvseState.Charging  # not WaitForAuth
        assert await until(lambda: register_of(manager, "A-1") == 2500)
        assert "A-1" not in server.offline
        assert offline_source("A-1") not in manager.leases.leases


@WIRES
async def test_an_idle_charger_that_disconnects_is_offline_not_charging(
    server: CsmsServer, manager: EnergyManager, wire: CsmsWire
) -> None:
    async with charger(server, "B", wire) as cp:
        await cp.boot()
        await cp.status(1, "Available")
        await limit_reaches(cp, 0.0)
    await until(lambda: "garage" in server.offline)
    await publications(manager, 2)
    assert evse_request(manager, "garage").evse_state == EvseState.Unplugged
    assert offline_source("garage") not in manager.leases.leases  # nothing reserved
    assert enforced_a(manager, "garage") == 0.0


@WIRES
async def test_restart_mid_transaction_resumes(
    clock: ManualClock, wire: CsmsWire, tmp_path: Path
) -> None:
    """energytree restarts (a new manager and CSMS) while a charger charges: the EVSE is
    active and pinned at once, and the charger's next message without ``evse`` is its."""
    config = CONFIG.model_copy(update={"state_path": tmp_path / "chargers.json"})
    options = ManagerOptions(tick_s=0.05)
    async with EnergyManager(site_request(site(), NOW), planner=instant_plan, clock=clock,
                             options=options) as manager, \
            CsmsServer(config, manager, clock) as server, \
            charger(server, "A", wire, password="secret-a") as cp:
        await cp.boot()
        started = await cp.start_transaction(1)
        await limit_reaches(cp, 16.0)
        await until(lambda: server.pushed["A-1"].grant.current_a == 16.0)  # its answer is in
    tx = started.transaction_id if wire is CSMS16 else "tx-1"

    async with EnergyManager(site_request(site(), NOW), planner=instant_plan, clock=clock,
                             options=options) as manager, \
            CsmsServer(config, manager, clock) as server:
        assert manager.evse_state("A-1") in (EvseState.PrepareCharging, EvseState.Charging)
        pin = manager.leases.leases[offline_source("A-1")]
        assert pin.limits.schedule_import[0].limits_to_root.ac_min_current_A == 16.0
        async with charger(server, "A", wire, password="secret-a") as cp:
            await resume(cp, tx, register_wh=3000)
            await limit_reaches(cp, 16.0)
            assert await until(lambda: register_of(manager, "A-1") == 3000)
            assert manager.evse_state("A-1") == EvseState.Charging
            assert server.memory.transactions_of("A") == {str(tx): 1}
