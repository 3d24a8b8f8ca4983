"""The grid operator's channels through the whole service (``Service``, what ``serve`` runs).

Real peers on 127.0.0.1: curl (or httpx where curl is missing) with the seed document's own
command lines, a grpc client with and without each credential, a pymodbus master, and the
simulated Socomec meter of the depot example.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import shlex
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from pymodbus.client import AsyncModbusTcpClient

from adapters.grpc import GrpcServer
from adapters.grpc.client import ApiError, EnergyTreeClient
from adapters.http import HttpApi
from adapters.meter.client import GridMeterClient, MeterState
from adapters.meter.registermap import load_register_map
from adapters.meter.simulator import MeterSimulator, meter_values
from adapters.sunspec import GRID_POWER_ADDRESS, PERCENT_ADDRESS, SunSpecServer
from energytree.app import runtime
from energytree.app.service import ServiceConfig, load_service_config
from energytree.errors import ConfigError
from energytree.types import ExternalLimits, LimitsReq, ScheduleReqEntry
from energytree.yamlfile import parse_model
from tests.integration.test_runtime import (
    FULL,
    PMIN_TWO_W,
    Publications,
    Recorder,
    granted_w,
    near,
    running,
    site,
    to_float,
    to_registers,
    until,
)

ROOT = Path(__file__).resolve().parents[2]
SEED_USER, SEED_PASSWORD = "admin", "1234abcd"
TOKEN, OPERATOR = "client-s3cret", "operator-s3cret"
# The seed's Linux command lines, verbatim; its get_cm_vars line lacks the closing quote,
# which a shell needs, so that one is closed here.
SEED_GET = "curl -i -X GET --user admin:1234abcd 'http://localhost/cnf?cmd=set_cm_vars&name=var3&val=123'"
SEED_POST = """curl -i -X POST -d '{ "vars": [{ "name": "tarif", "expr": 1 }, { "name": "PWR", "expr": 70 }] }' --user admin:1234abcd 'http://localhost/cnf?cmd=set_cm_vars'"""  # noqa: E501
SEED_READ = "curl -i -X GET --user admin:1234abcd 'http://localhost/cnf?cmd=get_cm_vars'"
SEED_CLEAR_BODY = '{"vars": [{ "name": "var1", "expr": 1.5 }], { "name": "var2", "expr": 2 }] }'
TARIF_RULE = "CM.TARIF == 1 ? 10000 : 6000"  # the seed's TARIF as a charging rule [mA]


def http_site(**sections: Any) -> ServiceConfig:
    config = http_site_without_rule(**sections).model_dump()
    config["grid"]["children"][1]["charging_rule"] = TARIF_RULE
    return ServiceConfig.model_validate(config)


def http_site_without_rule(**sections: Any) -> ServiceConfig:
    return site(http_api={"host": "127.0.0.1", "port": 0, "username": SEED_USER,
                          "password": SEED_PASSWORD}, **sections)


async def curl(line: str, port: int) -> tuple[int, dict[str, Any]]:
    """Run a seed command line against our port: curl itself, or httpx sending the same."""
    argv = shlex.split(line)
    url = argv[-1].replace("http://localhost/", f"http://127.0.0.1:{port}/")
    if shutil.which("curl"):
        argv = [*argv[:-1], "--silent", "--show-error", "--max-time", "30",
                "--connect-to", f"localhost:80:127.0.0.1:{port}", argv[-1]]
        done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True,
                                       timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
        return int(head.split()[1]), json.loads(body)
    data = argv[argv.index("-d") + 1] if "-d" in argv else None
    async with httpx.AsyncClient(auth=(SEED_USER, SEED_PASSWORD)) as http:
        reply = await http.request(argv[argv.index("-X") + 1], url, content=data, headers={
            "Content-Type": "application/x-www-form-urlencoded"} if data else None)
    return reply.status_code, reply.json()


def http_port(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    apis = Recorder(HttpApi)
    monkeypatch.setattr("energytree.app.plugs.httpapi.HttpApi", apis)
    return apis


@contextlib.asynccontextmanager
async def seed_client(config: ServiceConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                      ) -> AsyncIterator[tuple[runtime.Service, str, httpx.AsyncClient]]:
    """The service on ``config``, its variables API's URL and a client logged in as the seed
    document's operator."""
    apis = http_port(monkeypatch)
    async with (running(config, tmp_path) as service,
                httpx.AsyncClient(auth=(SEED_USER, SEED_PASSWORD)) as http):
        yield service, f"http://127.0.0.1:{apis.made[0].port}/cnf", http


# ---- the seed's requests, verbatim ----------------------------------------------------------


async def test_the_seeds_curl_lines_work_verbatim_with_rules_in_cm_tarif_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apis = http_port(monkeypatch)
    async with running(http_site(), tmp_path) as service:
        await until(lambda: near({"garage": 16.0, "carport": 0.0})(service))  # no TARIF yet
        port = apis.made[0].port
        assert await curl(SEED_GET, port) == (200, {"changed": ["var3"]})
        assert await curl(SEED_POST, port) == (200, {"changed": ["PWR", "tarif"]})
        await until(lambda: near({"garage": 16.0, "carport": 10.0})(service))
        status, shown = await curl(SEED_READ, port)
        assert status == 200
        assert shown == {"vars": [{"name": "var3", "expr": 123, "value": 123.0},
                                  {"name": "tarif", "expr": 1, "value": 1.0},
                                  {"name": "PWR", "expr": 70, "value": 70.0}]}
        rows = service.audit.rows()
        assert {(r["source"], r["channel"], r["identity"]) for r in rows} == {
            ("CM.VAR3", "http", "admin"), ("CM.TARIF", "http", "admin"),
            ("CM.PWR", "http", "admin")}


async def test_query_style_and_odd_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with seed_client(http_site(), tmp_path, monkeypatch) as (service, base, http):
        reply = await http.post(f"{base}?cmd=set_cm_vars&name=Q&val=5")
        assert (reply.status_code, reply.json()) == (200, {"changed": ["Q"]})
        reply = await http.post(f"{base}?cmd=set_cm_vars")
        assert reply.status_code == 400
        assert "name=…&val=… in the query" in reply.json()["error"]
        reply = await http.get(f"{base}?cmd=set_cm_vars&name=Q&val=")
        assert reply.status_code == 400
        assert reply.json()["error"] == (
            "val for 'Q' is empty: send a number or a formula, e.g. val=60")
        for name in ("_num_charging", "_PRICE"):
            reply = await http.get(base, params={"cmd": "set_cm_vars", "name": name,
                                                 "val": "3"})
            assert reply.status_code == 400
            assert f"'{name}' is a predefined variable" in reply.json()["error"]
        # the seed's own clear=1 example body has one "]" too many: it says what to send
        seed_body = SEED_CLEAR_BODY
        reply = await http.post(f"{base}?cmd=set_cm_vars&clear=1", content=seed_body)
        assert reply.status_code == 400
        assert reply.json()["error"].endswith(
            'expected {"vars": [{"name": …, "expr": …}, …]}')
        assert service.variables.names() == ["Q"]


REFUSED = {"9^9^9^9": 3, "1/0": 1, "10^400": 2, "sqrt(-1)": 0}  # formula: error position


async def test_formulas_that_can_never_work_are_refused_at_the_door(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with seed_client(http_site(), tmp_path, monkeypatch) as (service, base, http):
        reply = await http.get(base, params={"cmd": "set_cm_vars", "name": "TARIF",
                                             "val": "1"})
        assert reply.status_code == 200
        await until(lambda: near({"garage": 16.0, "carport": 10.0})(service))
        for text, position in REFUSED.items():
            for request in (
                http.get(base, params={"cmd": "set_cm_vars", "name": "AVAIL", "val": text}),
                http.post(f"{base}?cmd=set_cm_vars", json={"vars": [
                    {"name": "x", "expr": 1}, {"name": "AVAIL", "expr": text}]}),
            ):
                reply = await request
                assert reply.status_code == 400, text
                assert "variable 'AVAIL': " in reply.json()["error"]
                assert f"at position {position}" in reply.json()["error"]
        reply = await http.get(base, params={"cmd": "get_cm_vars"})
        assert reply.json() == {"vars": [{"name": "TARIF", "expr": 1, "value": 1.0}]}
        assert near({"garage": 16.0, "carport": 10.0})(service)  # nothing changed
        assert [r["source"] for r in service.audit.rows()] == ["CM.TARIF"]


def grid_formula_failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if "max_power_W of house failed" in r.getMessage()]


async def test_a_formula_failing_on_its_names_is_shown_logged_once_and_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="energytree.app.runtime")
    config = http_site_without_rule()
    async with seed_client(config, tmp_path, monkeypatch) as (service, base, http):
        publications = Publications(service)
        body = {"vars": [{"name": "zero", "expr": 0}, {"name": "AVAIL", "expr": "50 / zero"}]}
        reply = await http.post(f"{base}?cmd=set_cm_vars", json=body)
        assert reply.status_code == 200
        for _ in range(5):  # several ticks
            await publications.next()
        await until(lambda: granted_w(service.manager.enforced_limits) <= PMIN_TWO_W)
        shown = (await http.get(base, params={"cmd": "get_cm_vars"})).json()["vars"]
        assert shown[1]["value"] is None
        assert shown[1]["error"].startswith("division by zero at position 3")
        failures = grid_formula_failures(caplog)
        assert len(failures) == 1
        assert failures[0].count("at position") == 1
        assert "CM.AVAIL: division by zero at position" in failures[0]
        reply = await http.get(base, params={"cmd": "set_cm_vars", "name": "zero",
                                             "val": "0 * 2"})  # a change, still failing
        assert reply.status_code == 200
        for _ in range(5):
            await publications.next()
        failures = grid_formula_failures(caplog)
        assert len(failures) == 2
        await http.get(base, params={"cmd": "set_cm_vars", "name": "zero", "val": "0.5"})
        await until(lambda: near(FULL)(service))  # AVAIL = 100


async def test_the_writable_percentage_variable_dims_on_the_sites_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = http_site_without_rule(fourteen_a={"percent_base_W": 22000})
    async with seed_client(config, tmp_path, monkeypatch) as (service, base, http):
        reply = await http.get(base, params={"cmd": "set_cm_vars",
                                             "name": "_max_total_current_prc", "val": "40"})
        assert reply.status_code == 200
        # 40 % of 22 kW = 8800 W, the same as AVAIL=40 in the site's formula
        await until(lambda: near({"garage": 6.37, "carport": 6.37})(service))
        await http.get(base, params={"cmd": "set_cm_vars", "name": "_max_total_current_prc",
                                     "val": "100"})
        await until(lambda: near(FULL)(service))


# ---- gRPC roles through the service ----------------------------------------------------------


async def test_grpc_without_and_with_each_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = Recorder(GrpcServer)
    monkeypatch.setattr("energytree.app.plugs.grpcapi.GrpcServer", servers)
    config = site(grpc={"host": "127.0.0.1", "port": 0, "token": TOKEN,
                        "operator_token": OPERATOR})
    async with running(config, tmp_path) as service:
        await until(lambda: near(FULL)(service))
        address = f"127.0.0.1:{servers.made[0].port}"
        for token, code in ((None, grpc.StatusCode.UNAUTHENTICATED),
                            ("guess", grpc.StatusCode.UNAUTHENTICATED),
                            (TOKEN, grpc.StatusCode.PERMISSION_DENIED)):
            async with EnergyTreeClient(address, token=token) as caller:
                with pytest.raises(ApiError) as info:
                    await caller.set_variables([("AVAIL", 0)])
                assert info.value.code == code
        assert service.variables.names() == [] and service.audit.rows() == []
        async with EnergyTreeClient(address, token=TOKEN) as ordinary:
            assert len((await ordinary.get_status()).evses) == 2
        async with EnergyTreeClient(address, token=OPERATOR) as operator:
            assert await operator.set_variables([("avail", 40)]) == ["avail"]
        await until(lambda: near({"garage": 6.37, "carport": 6.37})(service))
        async with EnergyTreeClient(address, token=OPERATOR) as operator:
            await operator.set_external_limits("dso", "house", cap_w(9000.0))
            assert await operator.clear_external_limits("dso") is True
        rows = service.audit.rows()
        assert [(r["source"], r["channel"], r["end"] is None) for r in rows] == [
            ("CM.AVAIL", "grpc", True), ("dso", "grpc", False)]
        assert all(r["identity"].startswith("operator ipv4:127.0.0.1:") for r in rows)


def cap_w(watts: float) -> ExternalLimits:
    entry = ScheduleReqEntry(timestamp=datetime.now(UTC),
                             limits_to_root=LimitsReq(total_power_W=watts),
                             limits_to_leaves=LimitsReq())
    return ExternalLimits(schedule_import=[entry])


def test_a_site_file_with_an_open_grpc_port_refuses_to_start() -> None:
    text = "name: x\ngrid:\n  uuid: g\n  max_current_A: 35\n  children: [{evse: a}]\n" \
           "grpc:\n  host: 127.0.0.1\n  port: 50051\n"
    with pytest.raises(ConfigError, match=r"site.yaml:7: grpc: .*would accept writes"):
        parse_model(text, ServiceConfig, "site.yaml")


# ---- SunSpec says what it knows -----------------------------------------------------------


async def test_sunspec_power_is_not_available_while_the_meter_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers, clients = Recorder(SunSpecServer), Recorder(GridMeterClient)
    monkeypatch.setattr("energytree.app.plugs.sunspec.SunSpecServer", servers)
    monkeypatch.setattr("energytree.app.plugs.meter.GridMeterClient", clients)
    simulator = MeterSimulator(load_register_map("socomec-countis-e27"),
                               lambda: meter_values((8.0, 6.0, 4.0)))
    port = await simulator.start()
    meter = {"register_map": "socomec-countis-e27", "host": "127.0.0.1", "port": port,
             "poll_interval_s": 0.05, "timeout_s": 0.5}
    config = site(meter=meter, sunspec={"host": "127.0.0.1", "port": 0})
    try:
        async with running(config, tmp_path):
            [client] = clients.made
            await until(lambda: client.state is MeterState.NORMAL)
            modbus = AsyncModbusTcpClient("127.0.0.1", port=servers.made[0].port)
            await modbus.connect()
            try:
                read = await modbus.read_holding_registers(GRID_POWER_ADDRESS, count=2,
                                                           device_id=1)
                assert to_float(read.registers) == pytest.approx(18 * 230, rel=0.01)
                await simulator.stop()
                await until(lambda: client.state is MeterState.WARNING)
                read = await modbus.read_holding_registers(GRID_POWER_ADDRESS, count=2,
                                                           device_id=1)
                assert math.isnan(to_float(read.registers))  # SunSpec's "not available"
            finally:
                modbus.close()
    finally:
        await simulator.stop()


async def test_40968_reads_back_what_the_operator_wrote_also_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = Recorder(SunSpecServer)
    monkeypatch.setattr("energytree.app.plugs.sunspec.SunSpecServer", servers)
    config = site(sunspec={"host": "127.0.0.1", "port": 0})

    async def percent_register(port: int, write: float | None = None) -> float:
        modbus = AsyncModbusTcpClient("127.0.0.1", port=port)
        await modbus.connect()
        try:
            if write is not None:
                reply = await modbus.write_registers(PERCENT_ADDRESS, to_registers(write),
                                                     device_id=1)
                assert not reply.isError(), reply
            read = await modbus.read_holding_registers(PERCENT_ADDRESS, count=2, device_id=1)
            return to_float(read.registers)
        finally:
            modbus.close()

    async with running(config, tmp_path) as service:  # 30 % of 24150 W is below §14a's Pmin
        assert await percent_register(servers.made[-1].port, 30.0) == pytest.approx(30.0)
        await until(lambda: granted_w(service.manager.enforced_limits) <= PMIN_TWO_W)
    async with running(config, tmp_path):
        assert await percent_register(servers.made[-1].port) == pytest.approx(30.0)


# ---- the depot's meter and the examples -----------------------------------------------------


async def test_the_depot_stays_normal_with_its_simulated_meter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clients = Recorder(GridMeterClient)
    monkeypatch.setattr("energytree.app.plugs.meter.GridMeterClient", clients)
    depot = load_service_config(ROOT / "examples" / "depot.yaml")
    assert depot.meter is not None
    config = depot.model_copy(update={
        "tick_s": 0.2, "status_interval_s": 3600,
        "meter": depot.meter.model_copy(update={"poll_interval_s": 0.1})})
    service = runtime.Service(config, tmp_path, simulate=True)
    states: list[MeterState] = []
    readings: list[float] = []
    monkeypatch.setattr(service, "on_meter_state", states.append)
    original = service.on_meter_reading
    monkeypatch.setattr(service, "on_meter_reading",
                        lambda reading: (readings.append(max(reading.current_a)),
                                         original(reading)))
    await service.start()
    try:
        await until(lambda: readings and max(readings) > 1000.0, timeout_s=120)
        count = len(readings)
        await until(lambda: len(readings) >= count + 20, timeout_s=120)
    finally:
        await service.stop()
    assert clients.made[0].config.max_plausible_current_a == 3750.0  # 3 × 1250 A
    assert [s for s in states if s in (MeterState.WARNING, MeterState.ERROR)] == []
