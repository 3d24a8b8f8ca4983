"""The whole service on real sockets (127.0.0.1): meter timeline, grid-operator control, CLI.

Each test starts a ``Service`` from a site dict with the adapter sections it needs, talks to it
with real protocol clients (httpx, pymodbus) and watches the EVSEs' enforced limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient

from adapters.http import HttpApi
from adapters.meter.client import GridMeterClient, MeterState
from adapters.meter.registermap import load_register_map
from adapters.meter.simulator import MeterSimulator, meter_values
from adapters.sunspec import PERCENT_ADDRESS, SunSpecServer
from energytree.app.runtime import Service
from energytree.app.service import ServiceConfig
from energytree.gridops import pmin_14a_w
from energytree.types import (
    EnforcedLimits,
    ExternalLimits,
    LimitsReq,
    ScheduleReqEntry,
)
from tests.integration.test_ripple import K1_COIL, K2_COIL, UNIT, ContactBox

ROOT = Path(__file__).resolve().parents[2]
VOLT = 230.0
PMIN_TWO_W = pmin_14a_w(2)  # 7560 W for the two wallboxes
CONNECTION_W = 35 * 3 * VOLT  # what operator percentages refer to
USER, PASSWORD = "admin", "test-password"
CLIENT_LOG = "adapters.meter.client"
FLOAT32 = AsyncModbusTcpClient.DATATYPE.FLOAT32


def site(**sections: Any) -> ServiceConfig:
    """Two three-phase wallboxes (16 A) behind 3 × 35 A; 22 kW × AVAIL % for the EVSEs."""
    return ServiceConfig.model_validate({
        "name": "test home", "timezone": "Europe/Berlin", "nominal_voltage_V": VOLT,
        "tick_s": 0.05, "plan_budget_s": 1, "status_interval_s": 3600,
        "grid": {
            "uuid": "house", "max_current_A": 35,
            "max_power_W": "22000 * (exists(CM.AVAIL) ? CM.AVAIL : 100) / 100",
            "children": [{"evse": "garage", "max_current_A": 16},
                         {"evse": "carport", "max_current_A": 16}],
        },
        **sections,
    })


class Recorder:
    """Stands in for an adapter class in ``energytree.app.runtime``: builds it, remembers it."""

    def __init__(self, cls: Callable[..., Any], **extra: Any) -> None:
        self.cls, self.extra, self.made = cls, extra, []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        made = self.cls(*args, **{**self.extra, **kwargs})
        self.made.append(made)
        return made


class FakeClock:
    """The grid-meter client's monotonic clock, moved by hand (as in test_meter_client)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def granted(limits: list[EnforcedLimits]) -> dict[str, float]:
    return {x.uuid: (x.limits_root_side.ac_max_current_A or 0.0) if x.limits_root_side else 0.0
            for x in limits}


def granted_w(limits: list[EnforcedLimits]) -> float:
    return sum((x.limits_root_side.total_power_W or 0.0) if x.limits_root_side else 0.0
               for x in limits)


def current_of(service: Service) -> dict[str, float]:
    return granted(service.manager.enforced_limits)


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


def near(expected: dict[str, float]) -> Callable[[Service], bool]:
    def check(service: Service) -> bool:
        now = current_of(service)
        return now.keys() == expected.keys() and all(
            abs(now[k] - v) <= 0.011 for k, v in expected.items())
    return check


def within(limits: list[EnforcedLimits], amps: float) -> bool:
    """Every EVSE at or below ``amps`` (a drop applies at the next tick, before any re-plan;
    a plan made for an earlier state may hold the EVSEs lower until the next one)."""
    return all(value <= amps + 0.005 for value in granted(limits).values())


class Publications:
    """Every publication of the manager, so a test can wait for the next one."""

    def __init__(self, service: Service) -> None:
        self.queue: asyncio.Queue[list[EnforcedLimits]] = asyncio.Queue()
        service.manager.add_listener(self.queue.put_nowait)

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    async def next(self) -> list[EnforcedLimits]:
        return await asyncio.wait_for(self.queue.get(), timeout=10)


@contextlib.asynccontextmanager
async def running(config: ServiceConfig, state_dir: Path) -> AsyncIterator[Service]:
    service = Service(config, state_dir)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


FULL = {"garage": 15.94, "carport": 15.94}  # 22 kW shared: 22000 / 1380 V, floored


# ---- (a) the grid meter's timeline through the whole service ------------------------------


async def test_meter_timeline_safe_current_error_and_recovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=CLIENT_LOG)
    clock = FakeClock()
    clients = Recorder(GridMeterClient, clock=clock)
    monkeypatch.setattr("energytree.app.plugs.meter.GridMeterClient", clients)
    household = (8.0, 6.0, 4.0)
    holder: dict[str, Service] = {}

    def measured() -> dict[str, float]:
        """The household plus what our EVSEs are allowed (they draw it, on three phases)."""
        service = holder.get("service")
        ev = sum(current_of(service).values()) if service else 0.0
        return meter_values(tuple(h + ev for h in household))  # type: ignore[arg-type]

    simulator = MeterSimulator(load_register_map("socomec-countis-e27"), measured)
    port = await simulator.start()
    meter = {"register_map": "socomec-countis-e27", "host": "127.0.0.1", "port": port,
             "poll_interval_s": 0.05, "timeout_s": 0.5, "safe_current_A": 12, "margin_A": 1}
    try:
        async with running(site(meter=meter), tmp_path) as service:
            holder["service"] = service
            [client] = clients.made
            seen: list[tuple[MeterState, dict[str, float]]] = []
            service.manager.add_listener(lambda limits: seen.append((client.state,
                                                                     granted(limits))))
            publications = Publications(service)
            normal = {"garage": 13.0, "carport": 13.0}  # L1: 35 - 8 - 1 = 26 A for two
            await until(lambda: near(normal)(service))
            assert client.state is MeterState.NORMAL

            await simulator.stop()  # the meter goes silent
            await until(lambda: client.state is MeterState.WARNING)
            publications.drain()
            assert granted(await publications.next()) == {"garage": 6.0, "carport": 6.0}
            warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                        and r.name == CLIENT_LOG]
            assert warnings and warnings[0].startswith(
                f"Communication warning for modbus unit 5 (127.0.0.1:{port}): ")
            assert "grid meter (WARNING): safe current" in service.manager.status(
                ).evses[0].reason

            clock.now += 120  # two minutes without a valid reading
            await until(lambda: client.state is MeterState.ERROR)
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR
                      and r.name == CLIENT_LOG]
            assert len(errors) == 1
            assert errors[0].startswith(
                f"Communication error for modbus unit 5 (127.0.0.1:{port}): ")
            publications.drain()
            assert granted(await publications.next()) == {"garage": 6.0, "carport": 6.0}

            await simulator.start()  # the meter is back on the same port
            clock.now += 31  # past the reconnect back-off
            await until(lambda: client.state is MeterState.NORMAL)
            connected = [r.getMessage() for r in caplog.records if r.name == CLIENT_LOG
                         and r.levelno == logging.WARNING]
            assert connected[-1].startswith(
                f"TCP MODBUS unit 5 connected via 127.0.0.1:{port} again: recovered after ")
            await until(lambda: near(normal)(service))  # by itself
            # whenever the meter was not NORMAL, the EVSEs shared the 12 A safe current
            unsafe = [(state, amps) for state, amps in seen
                      if state is not MeterState.NORMAL and sum(amps.values()) > 12.0]
            assert unsafe == []
    finally:
        await simulator.stop()


# ---- (b) end-to-end grid-operator control -------------------------------------------------


def to_registers(value: float) -> list[int]:
    return AsyncModbusTcpClient.convert_to_registers(value, FLOAT32, word_order="big")


def to_float(registers: list[int]) -> float:
    value = AsyncModbusTcpClient.convert_from_registers(registers, FLOAT32, word_order="big")
    assert isinstance(value, float)
    return value


async def test_operator_dims_over_http_and_sunspec_never_below_14a(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apis, servers = Recorder(HttpApi), Recorder(SunSpecServer)
    monkeypatch.setattr("energytree.app.plugs.httpapi.HttpApi", apis)
    monkeypatch.setattr("energytree.app.plugs.sunspec.SunSpecServer", servers)
    config = site(http_api={"host": "127.0.0.1", "port": 0, "username": USER,
                            "password": PASSWORD},
                  sunspec={"host": "127.0.0.1", "port": 0})
    async with running(config, tmp_path) as service:
        await until(lambda: near(FULL)(service))
        publications = Publications(service)
        base = f"http://127.0.0.1:{apis.made[0].port}"
        async with httpx.AsyncClient(base_url=base, auth=(USER, PASSWORD)) as http:

            async def set_avail(value: str) -> list[EnforcedLimits]:
                reply = await http.get("/cnf", params={"cmd": "set_cm_vars", "name": "AVAIL",
                                                       "val": value})
                assert reply.status_code == 200, reply.text
                publications.drain()  # from here on, every tick knows the new value
                return await publications.next()

            dimmed = await set_avail("40")  # 22 kW × 40 % = 8800 W for both
            assert within(dimmed, 6.37) and granted_w(dimmed) <= 8_800.0
            await until(lambda: near({"garage": 6.37, "carport": 6.37})(service))
            floor = await set_avail("10")  # 2200 W asked; §14a leaves 7560 W
            assert granted_w(floor) <= PMIN_TWO_W  # at once within the new limit …
            await until(lambda: granted_w(service.manager.enforced_limits)
                        >= PMIN_TWO_W - 7.0)  # … and, once re-planned, all of it
            assert sorted(current_of(service).values()) == pytest.approx([0.0, 10.95])
            await set_avail("100")
            await until(lambda: near(FULL)(service))

        modbus = AsyncModbusTcpClient("127.0.0.1", port=servers.made[0].port)
        await modbus.connect()
        try:

            async def set_percent(percent: float) -> list[EnforcedLimits]:
                reply = await modbus.write_registers(PERCENT_ADDRESS, to_registers(percent),
                                                     device_id=1)
                assert not reply.isError(), reply
                publications.drain()
                return await publications.next()

            dimmed = await set_percent(40.0)  # 40 % of 24.15 kW = 9660 W
            assert within(dimmed, 7.0)
            await until(lambda: near({"garage": 7.0, "carport": 7.0})(service))
            floor = await set_percent(10.0)  # 2415 W asked; never below 7560 W
            assert granted_w(floor) <= PMIN_TWO_W
            await until(lambda: granted_w(service.manager.enforced_limits)
                        >= PMIN_TWO_W - 7.0)
            read = await modbus.read_holding_registers(PERCENT_ADDRESS, count=2, device_id=1)
            assert to_float(read.registers) == pytest.approx(10.0)
        finally:
            modbus.close()
        lease = service.manager.leases.leases["sunspec"]
        assert lease.limits.schedule_import[0].limits_to_root.total_power_W == PMIN_TWO_W

        rows = service.audit.rows()
        assert [(r["source"], r["value"], r["end"] is None) for r in rows] == [
            ("CM.AVAIL", 40.0, False), ("CM.AVAIL", 10.0, False), ("CM.AVAIL", 100.0, True),
            ("sunspec", pytest.approx(0.4 * CONNECTION_W), False),
            ("sunspec", PMIN_TWO_W, True)]
        assert rows[0]["detail"] == "AVAIL = 40"
        assert rows[3]["detail"] == "40 % via SunSpec register 40968"


async def test_a_restarted_service_keeps_the_operators_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apis = Recorder(HttpApi)
    monkeypatch.setattr("energytree.app.plugs.httpapi.HttpApi", apis)
    config = site(http_api={"host": "127.0.0.1", "port": 0, "username": USER,
                            "password": PASSWORD})
    dimmed = {"garage": 6.37, "carport": 6.37}
    async with running(config, tmp_path) as service:
        base = f"http://127.0.0.1:{apis.made[-1].port}"
        async with httpx.AsyncClient(base_url=base, auth=(USER, PASSWORD)) as http:
            reply = await http.get("/cnf", params={"cmd": "set_cm_vars", "name": "AVAIL",
                                                   "val": "40"})
            assert reply.status_code == 200
        service.manager.set_external_limits("api", "house", _amps(12.0))  # a lease too
        await until(lambda: near({"garage": 6.0, "carport": 6.0})(service))
    async with running(config, tmp_path) as again:  # the same state directory
        assert near({"garage": 6.0, "carport": 6.0})(again)  # from the first tick on
        again.manager.clear_external_limits("api")
        await until(lambda: near(dimmed)(again))
        assert [r["source"] for r in again.audit.rows()] == ["CM.AVAIL"]


def _amps(value: float) -> ExternalLimits:
    entry = ScheduleReqEntry(timestamp=datetime.now(UTC),
                             limits_to_root=LimitsReq(ac_max_current_A=value),
                             limits_to_leaves=LimitsReq())
    return ExternalLimits(schedule_import=[entry])


# ---- (c) ripple-control contacts -----------------------------------------------------------


async def test_ripple_contacts_select_the_level(tmp_path: Path) -> None:
    box = ContactBox()
    await box.start()
    ripple = {"name": "RSE", "host": "127.0.0.1", "port": box.port, "unit": UNIT,
              "timeout_s": 0.5, "poll_interval_s": 0.05,
              "input1": {"address": K1_COIL, "kind": "coil"},
              "input2": {"address": K2_COIL, "kind": "coil"},
              "levels": {"open_open": {"percent": 100}, "k1": {"percent": 60},
                         "k2": {"percent": 30}, "both": {"power_W": 0}}}
    try:
        async with running(site(ripple=ripple), tmp_path) as service:
            await until(lambda: "ripple" in service.manager.leases.leases)
            await until(lambda: near(FULL)(service))

            await box.set_contacts(True, False)  # 60 % of 24.15 kW = 14490 W
            await until(lambda: near({"garage": 10.5, "carport": 10.5})(service))
            assert all(e.reason == "house/ripple: total_power_W"
                       for e in service.manager.status().evses)

            await box.set_contacts(True, True)  # 0 W asked: §14a leaves 7560 W
            await until(lambda: near({"garage": 10.95, "carport": 0.0})(service)
                        or near({"garage": 0.0, "carport": 10.95})(service))
            assert granted_w(service.manager.enforced_limits) == pytest.approx(PMIN_TWO_W,
                                                                               abs=7.0)
            await box.stop()  # unreadable contacts: the failsafe level (4.2 kW → floor)
            await until(lambda: [r["detail"] for r in service.audit.rows()][-1:]
                        == ["contacts failsafe"])
            assert granted_w(service.manager.enforced_limits) <= PMIN_TWO_W
            await until(lambda: granted_w(service.manager.enforced_limits)
                        >= PMIN_TWO_W - 7.0)  # once re-planned
            details = [(r["source"], r["detail"]) for r in service.audit.rows()]
            assert details == [("ripple", "contacts open_open"), ("ripple", "contacts k1"),
                               ("ripple", "contacts both"), ("ripple", "contacts failsafe")]
    finally:
        await box.stop()


# ---- OCPP towards the operator: offline failsafe --------------------------------------------


async def test_an_unreachable_operator_backend_gets_the_ocpp_failsafe(tmp_path: Path) -> None:
    """No backend at the configured address: no profile covers now, so while offline the
    failsafe applies (never below the §14a minimum), and it is in the audit log."""
    with socket.socket() as probe:  # a port on 127.0.0.1 with nobody listening
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config = site(ocpp_upstream={
        "url": f"ws://127.0.0.1:{closed_port}", "charge_point_id": "site-1",
        "failsafe_power_W": 9000, "reconnect_min_s": 0.05, "reconnect_max_s": 0.1})
    async with running(config, tmp_path) as service:
        await until(lambda: "ocpp" in service.manager.leases.leases)
        [entry] = service.manager.leases.leases["ocpp"].limits.schedule_import
        assert entry.limits_to_root.total_power_W == 9000
        await until(lambda: within(service.manager.enforced_limits, 9000 / (3 * VOLT) / 2 + 0.01))
        assert "ocpp" in service.audit.to_csv()


# ---- (d) `energytree serve --simulate` and (e) the embedding example -----------------------


def test_the_embedding_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "embedding" / "charger_stack.py")],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert all(line.startswith("{'left': ") for line in lines)
