"""Every EVSE mirrored to a supplier backend (the ``ocpp`` library) on 127.0.0.1.

Sessions upstream in order with their meter values (1.6 and 2.0.1), outages and restarts
without loss or duplicates, supplier profiles limiting one EVSE in a real manager, remote
start/stop, an HTTP CONNECT proxy (the SMGW's CLS channel) and wss with client certificates.
"""

from __future__ import annotations

import contextlib
import io
import logging
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trustme

from adapters.ocpp.evseport import SimulatedFeed
from adapters.ocpp.gateway import Gateway, GatewayConfig
from adapters.ocpp.link import TlsFiles, basic_auth
from adapters.ocpp.versions import BY_NAME, OcppVersion
from energytree.app.simulation import SimulatedCar, SimulatedEvse
from energytree.clock import ManualClock
from energytree.manager import EnergyManager, ManagerOptions
from energytree.plan import instant_plan
from energytree.sessions import Authorized, MeterReading, StateChanged
from energytree.site import EvseConfig, GridConfig, SiteConfig, site_request
from energytree.types import EvseState
from tests.integration.supplier import (
    GUARD_S,
    Backend,
    ConnectProxy,
    FixedLimit,
    stop_manager,
    until,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
EVSES = ("e1", "e2", "e3")


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    server = Backend()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(params=["1.6", "2.0.1"])
def version(request: pytest.FixtureRequest) -> OcppVersion:
    return BY_NAME[request.param]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
async def manager(clock: ManualClock) -> AsyncIterator[EnergyManager]:
    evses = [EvseConfig(evse=uuid, max_current_A=16, state=EvseState.Charging) for uuid in EVSES]
    site = SiteConfig(grid=GridConfig(max_current_A=63, children=evses))
    live = EnergyManager(site_request(site, NOW), planner=instant_plan, clock=clock,
                         options=ManagerOptions(tick_s=0.05))
    await live.start()
    yield live
    await stop_manager(live)


def config(backend: Backend, version: OcppVersion, tmp_path: Path, **kw: Any) -> GatewayConfig:
    fields: dict[str, Any] = {
        "url": f"ws://127.0.0.1:{backend.port}/ocpp", "version": version.name,
        "charge_point_prefix": "gw-", "db_path": tmp_path / "gateway.sqlite",
        "meter_interval_s": 300, "reconnect_min_s": 0.02, "reconnect_max_s": 0.2,
        "response_timeout_s": GUARD_S, "open_timeout_s": GUARD_S} | kw
    return GatewayConfig(**fields)


@contextlib.asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[Gateway]:
    async with gateway:
        yield gateway


def energy(version: OcppVersion, action: str, payload: dict[str, Any]) -> list[float]:
    """The energy register values [Wh] a session message carries."""
    if action == "StartTransaction":
        return [payload["meterStart"]]
    if action == "StopTransaction":
        return [payload["meterStop"]]
    values = payload.get("meterValue") or payload.get("transactionData") or []
    return [float(s["value"]) for v in values for s in v["sampledValue"]
            if s["measurand"] == "Energy.Active.Import.Register"]


def shape(version: OcppVersion, calls: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """Actions, with the TransactionEvent type for 2.0.1."""
    return [a if a != "TransactionEvent" else f"{a}.{p['eventType']}" for _, a, p in calls]


def expected(version: OcppVersion, updates: int) -> list[str]:
    if version.name == "1.6":
        return ["Authorize", "StartTransaction", *["MeterValues"] * updates, "StopTransaction"]
    events = ["Started", *["Updated"] * updates, "Ended"]
    return ["Authorize", *(f"TransactionEvent.{e}" for e in events)]


def check_transaction_ids(version: OcppVersion, calls: list[tuple[str, str, dict[str, Any]]],
                          backend: Backend) -> None:
    """All messages of the session carry the one transaction id; no message id twice."""
    assert len({mid for mid, _, _ in calls}) == len(calls)
    if version.name == "1.6":
        ids = {p["transactionId"] for _, a, p in calls if a != "StartTransaction" and
               a != "Authorize"}
        assert ids == {backend.next_tx}
    else:
        assert len({p["transactionInfo"]["transactionId"] for _, a, p in calls
                    if a == "TransactionEvent"}) == 1
        assert [p["seqNo"] for _, a, p in calls if a == "TransactionEvent"] == list(
            range(len(calls) - 1))


# ------------------------------------------------------------------ tests
async def test_a_simulated_session_appears_upstream_in_order(
    backend: Backend, version: OcppVersion, manager: EnergyManager, clock: ManualClock,
    tmp_path: Path,
) -> None:
    gateway = Gateway(config(backend, version, tmp_path), manager, EVSES, tariff=lambda: 1.0)
    sim = SimulatedEvse("e1", FixedLimit(), car=SimulatedCar(), import_wh=1000.0)  # type: ignore[arg-type]
    feed = SimulatedFeed(gateway)
    async with running(gateway):
        await backend.session("gw-e1")
        await until(gateway.links["e1"].connected.is_set)
        gateway.feed(Authorized("e1", "TAG1", clock.now()))
        feed.poll([sim], clock.now())  # plugged in: the session starts at 1000 Wh
        for dt in (600, 600, 1):  # 11 040 W for 10 min twice, then unplugged a second later
            clock.advance(dt)
            if dt == 1:
                sim.car = None
            sim.step(dt)
            feed.poll([sim], clock.now())
        await until(lambda: not gateway.outbox.pending())
        calls = backend.tx_calls("gw-e1")
        out = io.StringIO()
        gateway.log.write_csv(out)
    assert shape(version, calls) == expected(version, updates=2)
    assert [energy(version, a, p) for _, a, p in calls[1:]] == [
        [1000], [2840.0], [4680.0], [4680] if version.name == "1.6" else [4680.0]]
    check_transaction_ids(version, calls, backend)
    statuses = [p for cp, _, a, p in backend.calls if cp == "gw-e1" and a == "StatusNotification"]
    assert statuses  # the backend sees the EVSE's state as well
    assert backend.tx_calls("gw-e2") == []  # the others had no session
    row = out.getvalue().splitlines()[1].split(",")
    assert row[1:3] == ["e1", "TAG1"] and row[5:8] == ["1000", "4680", "3680"]


async def test_queued_messages_arrive_after_an_outage_in_order_and_once(
    backend: Backend, version: OcppVersion, manager: EnergyManager, clock: ManualClock,
    tmp_path: Path,
) -> None:
    gateway = Gateway(config(backend, version, tmp_path, meter_interval_s=0), manager, EVSES)
    async with running(gateway):
        await backend.session("gw-e1")
        await until(gateway.links["e1"].connected.is_set)
        start_session(gateway, clock)
        await until(lambda: not gateway.outbox.pending())
        await backend.stop()
        await until(lambda: not gateway.links["e1"].connected.is_set())
        end_session(gateway, clock, readings=3)
        assert len(gateway.outbox.pending("e1")) == 4  # 3 meter values and the stop
        await backend.start()
        await until(lambda: not gateway.outbox.pending())
    calls = backend.tx_calls("gw-e1")
    assert shape(version, calls) == expected(version, updates=4)
    assert [energy(version, a, p)[0] for _, a, p in calls[2:-1]] == [1100, 1200, 1300, 1400]
    check_transaction_ids(version, calls, backend)


def start_session(gateway: Gateway, clock: ManualClock) -> None:
    gateway.feed(MeterReading("e1", 1000.0, 0.0, clock.now()))
    gateway.feed(Authorized("e1", "TAG1", clock.now()))
    gateway.feed(StateChanged("e1", EvseState.Charging, clock.now()))
    clock.advance(60)
    gateway.feed(MeterReading("e1", 1100.0, 6000.0, clock.now()))


def end_session(gateway: Gateway, clock: ManualClock, readings: int, first_wh: float = 1200.0
                ) -> None:
    for k in range(readings):
        clock.advance(60)
        gateway.feed(MeterReading("e1", first_wh + 100.0 * k, 6000.0, clock.now()))
    gateway.feed(StateChanged("e1", EvseState.Unplugged, clock.now()))


async def test_a_gateway_restart_mid_queue_sends_the_rest_once(
    backend: Backend, version: OcppVersion, manager: EnergyManager, clock: ManualClock,
    tmp_path: Path,
) -> None:
    cfg = config(backend, version, tmp_path, meter_interval_s=0)
    first = Gateway(cfg, manager, EVSES)
    async with running(first):
        await backend.session("gw-e1")
        await until(first.links["e1"].connected.is_set)
        start_session(first, clock)
        await until(lambda: not first.outbox.pending())
        await backend.stop()
        await until(lambda: not first.links["e1"].connected.is_set())
        clock.advance(60)
        first.feed(MeterReading("e1", 1200.0, 6000.0, clock.now()))  # queued, not sent
    second = Gateway(cfg, manager, EVSES)  # same database: the session and queue continue
    assert len(second.outbox.pending("e1")) == 1 and second.tracker.active("e1") is not None
    await backend.start()
    async with running(second):
        end_session(second, clock, readings=2, first_wh=1300.0)
        await until(lambda: not second.outbox.pending())
    calls = backend.tx_calls("gw-e1")
    assert shape(version, calls) == expected(version, updates=4)
    assert [energy(version, a, p)[0] for _, a, p in calls[2:]] == [1100, 1200, 1300, 1400, 1400]
    check_transaction_ids(version, calls, backend)


async def test_a_supplier_profile_lowers_only_its_evse(
    backend: Backend, version: OcppVersion, manager: EnergyManager, tmp_path: Path,
) -> None:
    v = version
    gateway = Gateway(config(backend, v, tmp_path), manager, EVSES)
    async with running(gateway):
        await until(lambda: currents(manager) == {"e1": 16.0, "e2": 16.0, "e3": 16.0})
        session = await backend.session("gw-e2")
        result = await session.send(station_max(v, 10.0))
        await until(lambda: currents(manager) == {"e1": 16.0, "e2": 10.0, "e3": 16.0})
        sources = {s.name: s.node_uuid for s in manager.status().sources}
        cleared = await session.send(v.call.ClearChargingProfile(**{v.clear_id_field: 1}))
        await until(lambda: currents(manager)["e2"] == 16.0)
    assert (result.status, cleared.status) == ("Accepted", "Accepted")
    assert sources == {"supplier:e2": "e2"}


def currents(manager: EnergyManager) -> dict[str, float]:
    return {x.uuid: x.limits_root_side.ac_max_current_A for x in manager.enforced_limits
            if x is not None and x.limits_root_side is not None}  # type: ignore[misc]


def station_max(v: OcppVersion, amps: float) -> Any:
    schedule = {"charging_rate_unit": "A", "start_schedule": "2026-11-23T09:00:00Z",
                "charging_schedule_period": [{"start_period": 0, "limit": amps}]}
    profile = {v.profile_id_field: 1, "stack_level": 0,
               "charging_profile_purpose": v.purpose_to_wire("ChargingStationMaxProfile"),
               "charging_profile_kind": "Absolute",
               "charging_schedule": [{"id": 1, **schedule}] if v.schedules_are_list
               else schedule}
    return v.call.SetChargingProfile(**{v.connector_field: 0, v.profile_field: profile})


async def test_remote_start_and_stop_for_a_simulated_evse(
    backend: Backend, version: OcppVersion, manager: EnergyManager, clock: ManualClock,
    tmp_path: Path,
) -> None:
    v, is16 = version, version.name == "1.6"
    gateway = Gateway(config(backend, v, tmp_path), manager, EVSES)
    async with running(gateway):
        session = await backend.session("gw-e3")
        gateway.feed(MeterReading("e3", 500.0, 0.0, clock.now()))
        gateway.feed(StateChanged("e3", EvseState.WaitForAuth, clock.now()))  # plugged in
        start = (v.call.RemoteStartTransaction(id_tag="REMOTE1", connector_id=1) if is16 else
                 v.call.RequestStartTransaction(
                     id_token={"id_token": "REMOTE1", "type": "Central"}, remote_start_id=7))
        started = await session.send(start)
        await until(lambda: not gateway.outbox.pending())
        begin = backend.tx_calls("gw-e3")[-1][2]
        tx = backend.next_tx if is16 else begin["transactionInfo"]["transactionId"]
        stop = v.call.RemoteStopTransaction if is16 else v.call.RequestStopTransaction
        wrong = await session.send(stop(transaction_id=tx + 1 if is16 else "nope"))
        stopped = await session.send(stop(transaction_id=tx))
        await until(lambda: not gateway.outbox.pending() and gateway.tracker.active("e3") is None)
        reset = await session.send(v.call.Reset(type="Soft" if is16 else "OnIdle"))
        end = backend.tx_calls("gw-e3")[-1][2]
    assert (started.status, wrong.status, stopped.status, reset.status) == (
        "Accepted", "Rejected", "Accepted", "Accepted")
    if is16:
        assert begin["idTag"] == "REMOTE1" and end["reason"] == "Remote"
    else:
        assert begin["idToken"]["idToken"] == "REMOTE1"
        assert end["transactionInfo"]["stoppedReason"] == "Remote"


async def test_settings_are_answered(
    backend: Backend, version: OcppVersion, manager: EnergyManager, tmp_path: Path,
) -> None:
    v = version
    gateway = Gateway(config(backend, v, tmp_path), manager, EVSES)
    async with running(gateway):
        session = await backend.session("gw-e1")
        if v.name == "1.6":
            result = await session.send(
                v.call.GetConfiguration(key=["MeterValueSampleInterval", "Nope"]))
            found = {k["key"]: k["value"] for k in result.configuration_key}
            assert (found, result.unknown_key) == ({"MeterValueSampleInterval": "300"}, ["Nope"])
        else:
            data = [{"component": {"name": "SampledDataCtrlr"},
                     "variable": {"name": "TxUpdatedInterval"}},
                    {"component": {"name": "X"}, "variable": {"name": "Y"}}]
            result = await session.send(v.call.GetVariables(get_variable_data=data))
            assert [(r["attribute_status"], r.get("attribute_value"))
                    for r in result.get_variable_result] == [
                ("Accepted", "300"), ("UnknownVariable", None)]


# ------------------------------------------------------------------ the SMGW's CLS channel
@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    server = ConnectProxy()
    await server.start()
    yield server
    await server.stop()


async def test_the_connection_runs_through_the_http_connect_proxy(
    backend: Backend, proxy: ConnectProxy, manager: EnergyManager, tmp_path: Path,
) -> None:
    cfg = config(backend, BY_NAME["1.6"], tmp_path, proxy=f"http://127.0.0.1:{proxy.port}")
    async with running(Gateway(cfg, manager, ["e1"])):
        await backend.session("gw-e1")
    assert proxy.targets == [f"CONNECT 127.0.0.1:{backend.port}"]
    assert backend.peers == proxy.outbound  # the backend saw the proxy, not us


async def test_a_refusing_proxy_is_reported_clearly(
    backend: Backend, manager: EnergyManager, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    refusing = ConnectProxy(refuse=True)
    await refusing.start()
    cfg = config(backend, BY_NAME["1.6"], tmp_path, proxy=f"http://127.0.0.1:{refusing.port}")
    with caplog.at_level(logging.WARNING, logger="adapters.ocpp.link"):
        async with running(Gateway(cfg, manager, ["e1"])):
            await until(lambda: "proxy refused" in caplog.text)
    await refusing.stop()
    line = next(r.getMessage() for r in caplog.records if "proxy refused" in r.getMessage())
    assert "EVSE e1" in line and f"127.0.0.1:{backend.port}/ocpp/gw-e1" in line
    assert f"via proxy http://127.0.0.1:{refusing.port}" in line and "HTTP 403" in line
    assert backend.sessions == {}


# ------------------------------------------------------------------ wss, client certificates
@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_backend(ca: trustme.CA) -> AsyncIterator[Backend]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED  # the backend wants our client certificate
    server = Backend(context)
    await server.start()
    yield server
    await server.stop()


def tls_files(tmp_path: Path, trusted: trustme.CA, issuer: trustme.CA | None) -> TlsFiles:
    trusted.cert_pem.write_to_path(tmp_path / "ca.pem")
    if issuer is None:
        return TlsFiles(ca_file=tmp_path / "ca.pem")
    issued = issuer.issue_cert("gw-e1")
    issued.cert_chain_pems[0].write_to_path(tmp_path / "client.pem")
    issued.private_key_pem.write_to_path(tmp_path / "client.key")
    return TlsFiles(ca_file=tmp_path / "ca.pem", cert_file=tmp_path / "client.pem",
                    key_file=tmp_path / "client.key")


def wss_config(backend: Backend, tmp_path: Path, tls: TlsFiles) -> GatewayConfig:
    return config(backend, BY_NAME["2.0.1"], tmp_path, tls=tls,
                  url=f"wss://127.0.0.1:{backend.port}/ocpp")


async def test_wss_with_a_client_certificate(
    tls_backend: Backend, ca: trustme.CA, manager: EnergyManager, tmp_path: Path,
) -> None:
    cfg = wss_config(tls_backend, tmp_path, tls_files(tmp_path, ca, ca))
    async with running(Gateway(cfg, manager, ["e1"])):
        session = await tls_backend.session("gw-e1")
        peer = session.ws.transport.get_extra_info("peercert")
    assert peer["subjectAltName"] == (("DNS", "gw-e1"),)


@pytest.mark.parametrize(
    ("case", "cause"),
    [
        pytest.param("missing", "client certificate", id="no-client-certificate"),
        pytest.param("untrusted-client", "client certificate", id="client-cert-of-another-ca"),
        pytest.param("untrusted-server", "TLS verify failed", id="backend-of-another-ca"),
    ],
)
async def test_tls_failures_are_reported_clearly(
    tls_backend: Backend, ca: trustme.CA, manager: EnergyManager, tmp_path: Path,
    caplog: pytest.LogCaptureFixture, case: str, cause: str,
) -> None:
    other = trustme.CA()
    files = {"missing": (ca, None), "untrusted-client": (ca, other),
             "untrusted-server": (other, other)}[case]
    cfg = wss_config(tls_backend, tmp_path, tls_files(tmp_path, *files))
    with caplog.at_level(logging.WARNING, logger="adapters.ocpp.link"):
        async with running(Gateway(cfg, manager, ["e1"])):
            await until(lambda: "EVSE e1" in caplog.text)
    line = next(r.getMessage() for r in caplog.records if "EVSE e1" in r.getMessage())
    assert f"wss://127.0.0.1:{tls_backend.port}/ocpp/gw-e1" in line and cause in line
    assert tls_backend.sessions == {}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"url": "http://x/ocpp"}, "ws://", id="url-scheme"),
        pytest.param({"proxy": "socks5://x:1080"}, "CONNECT", id="proxy-scheme"),
        pytest.param({"tls": {"ca_file": "/ca.pem"}}, "wss://", id="tls-needs-wss"),
        pytest.param({"tls": {"key_file": "/k.pem"}}, "cert_file", id="key-without-cert"),
    ],
)
def test_config_rejects(fields: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        GatewayConfig(**({"url": "ws://127.0.0.1/ocpp", "db_path": tmp_path / "g.db"} | fields))


def test_charge_point_ids(tmp_path: Path) -> None:
    cfg = GatewayConfig(url="ws://h/ocpp", db_path=tmp_path / "g.db", charge_point_prefix="P-",
                        charge_point_ids={"e2": "WALLBOX-7"})
    assert (cfg.charge_point_id("e1"), cfg.charge_point_id("e2")) == ("P-e1", "WALLBOX-7")


async def test_supplier_profiles_survive_a_gateway_restart(
    backend: Backend, manager: EnergyManager, tmp_path: Path,
) -> None:
    v = BY_NAME["2.0.1"]
    cfg = config(backend, v, tmp_path)
    async with running(Gateway(cfg, manager, EVSES)):
        session = await backend.session("gw-e3")
        assert (await session.send(station_max(v, 8.0))).status == "Accepted"
    manager.clear_external_limits("supplier:e3")  # as if the manager had restarted too
    await until(lambda: currents(manager)["e3"] == 16.0)
    async with running(Gateway(cfg, manager, EVSES)):
        await until(lambda: currents(manager)["e3"] == 8.0)


async def test_a_refused_connection_is_reported_clearly(
    manager: EnergyManager, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    closed = Backend()
    await closed.start()
    await closed.stop()  # nothing listens on this port any more
    cfg = config(closed, BY_NAME["1.6"], tmp_path)
    with caplog.at_level(logging.WARNING, logger="adapters.ocpp.link"):
        async with running(Gateway(cfg, manager, ["e2"])):
            await until(lambda: "connection refused" in caplog.text)
    line = next(r.getMessage() for r in caplog.records if "refused" in r.getMessage())
    url = f"ws://127.0.0.1:{closed.port}/ocpp/gw-e2"
    assert line == f"EVSE e2: no connection to {url}: connection refused"


async def test_basic_auth_per_evse(
    backend: Backend, manager: EnergyManager, tmp_path: Path,
) -> None:
    cfg = config(backend, BY_NAME["1.6"], tmp_path, password="common",
                 passwords={"e2": "only-e2"})
    async with running(Gateway(cfg, manager, ["e1", "e2"])):
        await backend.session("gw-e1")
        await backend.session("gw-e2")
    assert backend.auth == {"gw-e1": basic_auth("gw-e1", "common")["Authorization"],
                            "gw-e2": basic_auth("gw-e2", "only-e2")["Authorization"]}
