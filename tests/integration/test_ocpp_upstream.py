"""The site as one charge point against a real ``ocpp`` library backend on 127.0.0.1.

Every test runs for OCPP 1.6 and 2.0.1: boot, status, meter values, charging profiles set
and cleared by the backend, GetCompositeSchedule, rejection of bad profiles, persistence and
reconnecting after a backend restart.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ocpp.charge_point import ChargePoint
from ocpp.routing import on
from ocpp.v201.enums import Action
from pydantic import SecretStr
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from adapters.ocpp.profiles import ProfileStore, Purpose
from adapters.ocpp.upstream import GridReading, UpstreamClient, UpstreamConfig
from adapters.ocpp.versions import BY_NAME, BY_SUBPROTOCOL, OcppVersion
from energytree.persist import read_json

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
GUARD_S = 10  # a hang guard, not a timing assertion


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


class CsmsSession(ChargePoint):
    """The backend's side of one connection, for either version."""

    def __init__(self, cp_id: str, ws: ServerConnection, version: OcppVersion) -> None:
        super().__init__(cp_id, ws)
        self._call, self._call_result = version.call, version.call_result
        self._ocpp_version = version.name
        self.version = version
        self.booted = asyncio.Event()
        self.meter_values: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.statuses: list[dict[str, Any]] = []

    @on(Action.boot_notification)
    async def on_boot_notification(self, **payload: Any) -> Any:
        self.booted.set()
        return self.version.call_result.BootNotification(
            current_time=iso(NOW), interval=300, status="Accepted"
        )

    @on(Action.heartbeat)
    async def on_heartbeat(self, **payload: Any) -> Any:
        return self.version.call_result.Heartbeat(current_time=iso(NOW))

    @on(Action.status_notification)
    async def on_status_notification(self, **payload: Any) -> Any:
        self.statuses.append(payload)
        return self.version.call_result.StatusNotification()

    @on(Action.meter_values)
    async def on_meter_values(self, **payload: Any) -> Any:
        self.meter_values.put_nowait(payload)
        return self.version.call_result.MeterValues()

    async def send(self, payload: Any) -> Any:
        return await self.call(payload, suppress=False)


class Csms:
    """A backend serving both subprotocols on 127.0.0.1; sessions arrive on a queue."""

    def __init__(self) -> None:
        self.sessions: asyncio.Queue[CsmsSession] = asyncio.Queue()
        self.auth: list[str | None] = []
        self.server: Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await serve(
            self._handle, "127.0.0.1", self.port, subprotocols=["ocpp1.6", "ocpp2.0.1"]
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.subprotocol is not None and ws.request is not None
        self.auth.append(ws.request.headers.get("Authorization"))
        session = CsmsSession(
            ws.request.path.rsplit("/", 1)[-1], ws, BY_SUBPROTOCOL[ws.subprotocol]
        )
        await self.sessions.put(session)
        with contextlib.suppress(ConnectionClosed):
            await session.start()

    async def next_session(self) -> CsmsSession:
        async with asyncio.timeout(GUARD_S):
            session = await self.sessions.get()
            await session.booted.wait()
            return session


@pytest.fixture
async def csms() -> AsyncIterator[Csms]:
    backend = Csms()
    await backend.start()
    yield backend
    await backend.stop()


@pytest.fixture(params=["1.6", "2.0.1"])
def version(request: pytest.FixtureRequest) -> OcppVersion:
    return BY_NAME[request.param]


@contextlib.asynccontextmanager
async def running(client: UpstreamClient) -> AsyncIterator[UpstreamClient]:
    task = asyncio.create_task(client.run())
    try:
        yield client
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def make_client(
    csms: Csms, version: OcppVersion, tmp_path: Path, changes: list[ProfileStore], **kw: Any
) -> UpstreamClient:
    async def read_meter() -> GridReading:
        return GridReading(power_w=5000.0, energy_import_wh=123456.0, currents_a=(8.0, 7.0, 6.5))

    config = UpstreamConfig(
        url=f"ws://127.0.0.1:{csms.port}/ocpp",
        charge_point_id="SITE1",
        version=version.name,
        meter_interval_s=0.05,
        reconnect_min_s=0.02,
        reconnect_max_s=0.2,
        profiles_path=tmp_path / "profiles.json",
        **kw,
    )
    return UpstreamClient(config, read_meter, changes.append, now=lambda: NOW)


def set_profile(
    v: OcppVersion,
    pid: int,
    periods: list[tuple[int, float]],
    *,
    purpose: Purpose = Purpose.station_max,
    connector: int = 0,
    stack: int = 0,
    kind: str = "Absolute",
    unit: str = "A",
    start: datetime | None = NOW,
    duration: int | None = None,
    recurrency: str | None = None,
) -> Any:
    """SetChargingProfile for version ``v``, built from the version table."""
    schedule: dict[str, Any] = {
        "charging_rate_unit": unit,
        "charging_schedule_period": [{"start_period": s, "limit": x} for s, x in periods],
    }
    if start is not None:
        schedule["start_schedule"] = iso(start)
    if duration is not None:
        schedule["duration"] = duration
    profile: dict[str, Any] = {
        v.profile_id_field: pid,
        "stack_level": stack,
        "charging_profile_purpose": v.purpose_to_wire(purpose),
        "charging_profile_kind": kind,
        "charging_schedule": [{"id": pid, **schedule}] if v.schedules_are_list else schedule,
    }
    if recurrency is not None:
        profile["recurrency_kind"] = recurrency
    return v.call.SetChargingProfile(**{v.connector_field: connector, v.profile_field: profile})


def composite_periods(v: OcppVersion, result: Any) -> list[tuple[int, float]]:
    body = getattr(result, v.composite_field)
    return [(p["start_period"], float(p["limit"])) for p in body["charging_schedule_period"]]


# ------------------------------------------------------------------ tests
async def test_boot_status_and_grid_meter_values(
    csms: Csms, version: OcppVersion, tmp_path: Path
) -> None:
    async with running(make_client(csms, version, tmp_path, [])) as client:
        session = await csms.next_session()
        async with asyncio.timeout(GUARD_S):
            await client.connected.wait()
            values = await session.meter_values.get()
    assert session.id == "SITE1" and client.boots == 1
    assert len(session.statuses) == len(version.station_statuses)
    assert values[version.connector_field] == 0  # the main (grid reference) meter
    samples = values["meter_value"][0]["sampled_value"]
    by_key = {(s["measurand"], s.get("phase")): float(s["value"]) for s in samples}
    assert by_key == {
        ("Power.Active.Import", None): 5000.0,
        ("Energy.Active.Import.Register", None): 123456.0,
        ("Current.Import", "L1"): 8.0,
        ("Current.Import", "L2"): 7.0,
        ("Current.Import", "L3"): 6.5,
    }


async def test_profiles_from_the_backend_shape_the_composite(
    csms: Csms, version: OcppVersion, tmp_path: Path
) -> None:
    changes: list[ProfileStore] = []
    v = version
    async with running(make_client(csms, v, tmp_path, changes)) as client:
        session = await csms.next_session()
        profiles = [
            set_profile(v, 1, [(0, 22000.0)], unit="W", start=NOW - timedelta(hours=1)),
            set_profile(
                v,
                2,
                [(0, 10.0)],
                stack=1,
                kind="Recurring",
                recurrency="Daily",
                start=NOW - timedelta(hours=23, minutes=30),
                duration=1800,
            ),
            set_profile(v, 3, [(0, 11040.0), (2700, 4600.0)], unit="W", purpose=Purpose.tx_default),
        ]
        for profile in profiles:
            assert (await session.send(profile)).status == "Accepted"
        result = await session.send(
            v.call.GetCompositeSchedule(
                **{v.connector_field: 0}, duration=3600, charging_rate_unit="A"
            )
        )
    assert result.status == "Accepted"
    # 16 A (11040 W TxDefault) → 10 A (daily level 1 from 10:30) → 6.6 A (4600 W / 690 V)
    assert composite_periods(v, result) == [(0, 16.0), (1800, 10.0), (2700, 6.6)]
    assert len(changes) == 3 and [p.id for p in changes[-1].profiles] == [1, 2, 3]
    stored = ProfileStore.load(read_json(tmp_path / "profiles.json"))
    assert stored.profiles == client.store.profiles


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param({"connector": 1}, "connector/EVSE 0", id="station-max-on-connector"),
        pytest.param({"purpose": Purpose.tx, "connector": 1}, "transaction", id="tx-no-tx"),
        pytest.param({"stack": 99}, "stackLevel", id="stack-level"),
        pytest.param(
            {"connector": 7, "purpose": Purpose.tx_default}, "connector 7", id="unknown-connector"
        ),
    ],
)
async def test_invalid_profiles_are_rejected_and_change_nothing(
    csms: Csms, version: OcppVersion, tmp_path: Path, bad: dict[str, Any], reason: str
) -> None:
    changes: list[ProfileStore] = []
    async with running(make_client(csms, version, tmp_path, changes)) as client:
        session = await csms.next_session()
        assert (await session.send(set_profile(version, 1, [(0, 16.0)]))).status == "Accepted"
        result = await session.send(set_profile(version, 2, [(0, 6.0)], **bad))
    assert result.status == "Rejected"
    if version.status_info:
        assert reason in result.status_info["additional_info"]
    assert [p.id for p in client.store.profiles] == [1] and len(changes) == 1


async def test_clear_reports_whether_something_matched(
    csms: Csms, version: OcppVersion, tmp_path: Path
) -> None:
    v = version
    changes: list[ProfileStore] = []
    async with running(make_client(csms, v, tmp_path, changes)) as client:
        session = await csms.next_session()
        await session.send(set_profile(v, 1, [(0, 16.0)]))
        await session.send(set_profile(v, 2, [(0, 8.0)], purpose=Purpose.tx_default, stack=2))
        by_id = {v.clear_id_field: 2}
        first = await session.send(v.call.ClearChargingProfile(**by_id))
        again = await session.send(v.call.ClearChargingProfile(**by_id))
    assert (first.status, again.status) == ("Accepted", "Unknown")
    assert [p.id for p in client.store.profiles] == [1] and len(changes) == 3


async def test_reconnects_after_a_backend_restart_and_keeps_profiles(
    csms: Csms, version: OcppVersion, tmp_path: Path
) -> None:
    async with running(make_client(csms, version, tmp_path, [])) as client:
        session = await csms.next_session()
        await session.send(set_profile(version, 1, [(0, 16.0)]))
        await csms.stop()
        await csms.start()  # same port
        again = await csms.next_session()
        result = await again.send(
            version.call.GetCompositeSchedule(**{version.connector_field: 0}, duration=60)
        )
    assert client.boots == 2
    assert composite_periods(version, result) == [(0, 16.0)]


async def test_restart_of_the_client_reloads_persisted_profiles(
    csms: Csms, version: OcppVersion, tmp_path: Path
) -> None:
    async with running(make_client(csms, version, tmp_path, [])):
        session = await csms.next_session()
        await session.send(set_profile(version, 5, [(0, 12.5)]))
    changes: list[ProfileStore] = []
    reborn = make_client(csms, version, tmp_path, changes)
    assert [(p.id, p.schedule.periods[0].limit) for p in reborn.store.profiles] == [(5, 12.5)]
    async with running(reborn):
        await csms.next_session()
    assert len(changes) == 1  # announced once at start, so the manager applies them
    (period,) = reborn.limit_periods(NOW, 600)
    assert (period.current_a, period.power_w, period.end) == (
        12.5,
        None,
        NOW + timedelta(minutes=10),
    )


def test_config_rejects_other_url_schemes() -> None:
    with pytest.raises(ValueError, match="ws://"):
        UpstreamConfig(url="http://127.0.0.1/ocpp", charge_point_id="SITE1")


async def test_basic_auth_header(csms: Csms, tmp_path: Path) -> None:
    client = make_client(csms, BY_NAME["1.6"], tmp_path, [], password=SecretStr("s3cret"))
    async with running(client):
        await csms.next_session()
    assert csms.auth == ["Basic " + base64.b64encode(b"SITE1:s3cret").decode()]


async def test_same_purpose_and_stack_level_with_another_id(
    csms: Csms, version: OcppVersion, tmp_path: Path
) -> None:
    """1.6 replaces the older profile (§5.16); 2.0.1 refuses the newer one (K01.FR.06) with
    a reason code, and keeps the older one."""
    v = version
    async with running(make_client(csms, v, tmp_path, [])) as client:
        session = await csms.next_session()
        first = await session.send(set_profile(v, 1, [(0, 20.0)]))
        second = await session.send(set_profile(v, 2, [(0, 10.0)]))
        assert first.status == "Accepted"
        if v.name == "1.6":
            assert second.status == "Accepted"
            assert [p.id for p in client.store.profiles] == [2]
        else:
            assert second.status == "Rejected"
            assert second.status_info["reason_code"] == "DuplicateProfile"
            assert [p.id for p in client.store.profiles] == [1]
        other_level = await session.send(set_profile(v, 3, [(0, 16.0)], stack=1))
        assert other_level.status == "Accepted"
