"""The OCPP links through the service wiring (``Service``, what ``energytree serve`` runs).

Real peers on 127.0.0.1: an ``ocpp`` library backend for the site's upstream link and the
supplier gateway, ``ocpp`` library chargers for the CSMS. Each case runs for 1.6 and 2.0.1.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.grpc.client import EnergyTreeClient
from adapters.ocpp.csms import CsmsServer
from adapters.ocpp.gateway import Gateway
from adapters.ocpp.upstream import GridReading, UpstreamClient
from adapters.ocpp.versions import BY_NAME, CSMS16, CSMS201, Sample
from energytree.app import cli
from energytree.app.plugs.csms import CsmsPlug
from energytree.app.plugs.upstream import OcppUpstreamPlug
from energytree.app.runtime import Service
from energytree.types import EvseState
from tests.integration.supplier import Backend
from tests.integration.test_ocpp_csms import (
    ChargerSim,
    charger,
    limit_reaches,
    register_of,
    resume,
    until,
)
from tests.integration.test_ocpp_upstream import Csms, CsmsSession, set_profile
from tests.integration.test_runtime import running, site

VERSIONS = pytest.mark.parametrize("version", ["1.6", "2.0.1"])
HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)
INTERVALS = 30  # "ten minutes" of 20 s meter intervals, at 0.05 s each


@pytest.fixture
async def backend() -> AsyncIterator[Csms]:
    """The grid operator's (or supplier's) backend: the ``ocpp`` library on 127.0.0.1."""
    peer = Csms()
    await peer.start()
    yield peer
    await peer.stop()


class AsyncReaderService(Service):
    """The same service with a coroutine as the upstream's meter reader (an embedding's)."""

    async def _grid_reading(self) -> GridReading | None:  # type: ignore[override]
        await asyncio.sleep(0)
        return super()._grid_reading()


def csms_of(service: Service) -> CsmsServer:
    plug = service.plugs["csms"]
    assert isinstance(plug, CsmsPlug) and plug.server is not None
    return plug.server


def upstream_of(service: Service) -> UpstreamClient:
    plug = service.plugs["ocpp_upstream"]
    assert isinstance(plug, OcppUpstreamPlug) and plug.client is not None
    return plug.client


def upstream_site(backend: Csms, version: str, **upstream: Any) -> Any:
    return site(
        meter={"register_map": "socomec-countis-e27", "poll_interval_s": 0.05},
        ocpp_upstream={"url": f"ws://127.0.0.1:{backend.port}/ocpp", "charge_point_id": "site-1",
                       "version": version, "meter_interval_s": 0.05,
                       "reconnect_min_s": 0.05, "reconnect_max_s": 0.1, **upstream})


def grid_power_w(payload: dict[str, Any]) -> float:
    """The site's power in one upstream MeterValues (import positive)."""
    [value] = payload["meter_value"]
    for sampled in value["sampled_value"]:
        sign = {"Power.Active.Import": 1.0, "Power.Active.Export": -1.0}.get(sampled["measurand"])
        if sign is not None:
            return sign * float(sampled["value"])
    raise AssertionError(f"no power in {payload}")


async def next_meter(session: CsmsSession) -> dict[str, Any]:
    async with asyncio.timeout(10):
        return await session.meter_values.get()


@VERSIONS
@pytest.mark.parametrize("service_class", [Service, AsyncReaderService], ids=["sync", "async"])
async def test_upstream_meter_values_keep_one_websocket(
    backend: Csms, version: str, service_class: type[Service], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The grid meter goes upstream at every interval over one connection, booted once; the
    link stops when the service does (a call in flight does not swallow the cancellation)."""
    config = upstream_site(backend, version)
    service = service_class(config, tmp_path, simulate=True)
    await service.start()
    try:
        session = await backend.next_session()
        powers = [grid_power_w(await next_meter(session)) for _ in range(INTERVALS)]
        assert upstream_of(service).boots == 1
        assert backend.sessions.empty()  # never a second connection
        assert all(p > 0 for p in powers)  # the household and the cars draw
    finally:
        await service.stop()
    assert [r.getMessage() for r in caplog.records if r.name == "energytree.tasks"] == []


@VERSIONS
async def test_operator_profiles_survive_a_restart_without_a_setting(
    backend: Csms, version: str, tmp_path: Path
) -> None:
    """No ``profiles_path``: the profiles are kept under the state directory all the same."""
    v = BY_NAME[version]
    config = upstream_site(backend, version, failsafe_power_W=None)
    async with running(config, tmp_path) as service:
        session = await backend.next_session()
        result = await session.send(set_profile(v, 7, [(0, 20.0)], start=HOUR_AGO))
        assert result.status == "Accepted"
        await until(lambda: "ocpp" in service.manager.leases.leases)
    assert (tmp_path / "ocpp-profiles.json").exists()
    await backend.stop()  # the backend is gone: the restarted site still knows the profile
    async with running(config, tmp_path) as service:
        lease = await until(lambda: service.manager.leases.leases.get("ocpp"))
        [entry] = lease.limits.schedule_import[:1]
        assert entry.limits_to_root.ac_max_current_A == 20.0
    await backend.start()  # for the fixture's stop


# ---- the CSMS and the supplier gateway in one service -------------------------------------


def charging_site(supplier: Backend, version: str, tmp_path: Path) -> Any:
    """garage on charger G, carport on charger C; every EVSE mirrored to the supplier."""
    return site(
        csms={"port": 0, "heartbeat_interval_s": 60, "response_timeout_s": 10,
              "chargers": [{"id": "G", "connectors": {1: "garage"}},
                           {"id": "C", "connectors": {1: "carport"}}]},
        ocpp_gateway={"url": f"ws://127.0.0.1:{supplier.port}", "version": version,
                      "db_path": str(tmp_path / "gateway.sqlite"), "meter_interval_s": 0,
                      "reconnect_min_s": 0.05, "reconnect_max_s": 0.1})


def mirrored_registers(supplier: Backend, cp_id: str) -> list[float]:
    """The energy registers the supplier was sent for ``cp_id``'s transactions, in order
    (the raw JSON payloads, camelCase)."""
    found = []
    for _mid, action, payload in supplier.tx_calls(cp_id):
        if action == "StartTransaction":
            found.append(float(payload["meterStart"]))
        for value in payload.get("meterValue") or payload.get("transactionData") or []:
            found += [float(s["value"]) for s in value["sampledValue"]
                      if s.get("measurand") == "Energy.Active.Import.Register"]
    return found


def starts(supplier: Backend, cp_id: str) -> int:
    return sum(action == "StartTransaction" or payload.get("eventType") == "Started"
               for _mid, action, payload in supplier.tx_calls(cp_id))


async def limit_above(cp: ChargerSim, amps: float) -> float:
    while (limit := (await cp.next_profile()).schedule.periods[0].limit) <= amps:
        pass
    return limit


@VERSIONS
async def test_chargers_through_the_service_survive_reconnects_restarts_and_resets(
    version: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One charging session across an idle charger's disconnect, a register reset, a
    reconnect and a restart of energytree: one session, monotonic energy, its limit back."""
    wire = CSMS16 if version == "1.6" else CSMS201
    supplier = Backend()
    await supplier.start()
    config = charging_site(supplier, version, tmp_path)
    try:
        async with running(config, tmp_path) as service:
            async with charger(csms_of(service), "C", wire) as idle:
                await idle.boot()
                await idle.status(1, "Available")
                await limit_reaches(idle, 0.0)
            await until(lambda: "carport" in csms_of(service).offline)

            async with charger(csms_of(service), "G", wire) as cp:
                await cp.boot()
                started = await cp.start_transaction(1, meter_wh=1000)
                assert await limit_above(cp, 6.0)
                for register in (1500, 200, 400):  # the meter restarts after 1500 Wh
                    await cp.meter(1, [Sample(register, "Energy.Active.Import.Register", "Wh")])
                    await until(lambda r=register: register_of(service.manager, "garage") == r)
                await until(lambda: mirrored_registers(supplier, "garage")[-1:] == [1700.0])
            tx = started.transaction_id if wire is CSMS16 else "tx-1"
            async with charger(csms_of(service), "G", wire) as cp:  # the network came back
                await resume(cp, tx, register_wh=600)
                assert await limit_above(cp, 6.0)
                await until(lambda: mirrored_registers(supplier, "garage")[-1:] == [1900.0])

        async with running(config, tmp_path) as service:  # energytree restarted
            assert service.manager.evse_state("carport") == EvseState.Unplugged
            shown = ""
            async with asyncio.timeout(10):  # the first status block: both chargers away
                while "offline (charger not connected): carport, garage" not in shown:
                    shown += capsys.readouterr().out
                    await asyncio.sleep(0.01)
            async with charger(csms_of(service), "G", wire) as cp:
                await resume(cp, tx, register_wh=800)
                assert await limit_above(cp, 6.0)
                await until(lambda: mirrored_registers(supplier, "garage")[-1:] == [2100.0])
            registers = mirrored_registers(supplier, "garage")
            assert registers == sorted(registers)
            assert (starts(supplier, "garage"), starts(supplier, "carport")) == (1, 0)
            assert isinstance(service.sessions, Gateway)
            [session] = service.sessions.log.sessions()
            assert session.stop is None and session.energy_wh == 1100.0
    finally:
        await supplier.stop()


# ---- the operator's source in status, gRPC and the CLI ----------------------------------


async def test_status_grpc_and_cli_show_the_applied_source_and_its_failsafe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The operator's backend is unreachable: the ``ocpp`` source applies its failsafe."""
    closed_port, grpc_port = free_ports(2)
    config = site(
        grpc={"host": "127.0.0.1", "port": grpc_port, "allow_unauthenticated": True},
        ocpp_upstream={"url": f"ws://127.0.0.1:{closed_port}", "charge_point_id": "site-1",
                       "failsafe_power_W": 9000, "reconnect_min_s": 0.05,
                       "reconnect_max_s": 0.1})
    async with running(config, tmp_path) as service:
        await until(lambda: "ocpp" in service.manager.leases.leases)
        [local] = [s for s in service.manager.status().sources if s.name == "ocpp"]
        async with EnergyTreeClient(f"127.0.0.1:{grpc_port}") as client:
            remote = {s.name: s for s in (await client.get_status()).sources}["ocpp"]
        for source in (local, remote):
            assert (source.value, source.unit, source.in_failsafe) == (9000.0, "W", True)
        assert remote == local
        capsys.readouterr()
        code = await asyncio.to_thread(cli.main, ["status", "--server", f"127.0.0.1:{grpc_port}"])
        assert code == 0
        assert "source ocpp on house, applies 9000 W, expires never failsafe" in \
            capsys.readouterr().out


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 nobody listens on (yet)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@VERSIONS
async def test_a_long_session_keeps_its_websockets_and_mirrors_every_reading(
    version: str, tmp_path: Path
) -> None:
    """Many meter intervals (accelerated) from a charger, all mirrored to the supplier: one
    websocket on each side throughout, monotonic registers, the energy adding up."""
    wire = CSMS16 if version == "1.6" else CSMS201
    supplier = Backend()
    await supplier.start()
    try:
        async with running(charging_site(supplier, version, tmp_path), tmp_path) as service:
            async with charger(csms_of(service), "G", wire) as cp:
                await cp.boot()
                await cp.start_transaction(1, meter_wh=1000)
                link = csms_of(service).sessions["G"]
                for k in range(1, INTERVALS + 1):
                    await cp.meter(1, [Sample(1000 + 10 * k, "Energy.Active.Import.Register",
                                              "Wh"), Sample(11_000, "Power.Active.Import", "W")])
                    await until(lambda k=k: mirrored_registers(supplier, "garage")[-1:]
                                == [1000.0 + 10 * k])
                assert csms_of(service).sessions["G"] is link  # the charger's one connection
            registers = mirrored_registers(supplier, "garage")
            assert registers == sorted(registers) and len(registers) == INTERVALS + 1
            assert [cp_id for cp_id, _mid, action, _p in supplier.calls
                    if action == "BootNotification"].count("garage") == 1
            assert isinstance(service.sessions, Gateway)
            [session] = service.sessions.log.sessions()
            assert session.energy_wh == 10.0 * INTERVALS
            assert sum(session.tariff_wh.values()) == session.energy_wh
    finally:
        await supplier.stop()
