"""The whole site as ONE OCPP charge point towards the grid operator's backend.

As cFos' "OCPP via OpenADR" wallbox: the operator sees one charge point whose meter is the
grid reference meter, and limits the site with charging profiles. Every accepted change is
persisted and handed to ``on_profiles_changed(store)``; the manager turns the composite
schedule into an external-limit source on the site root. Usage::

    def apply(_store: ProfileStore) -> None:
        periods = client.limit_periods(manager.clock.now(), 86_400)
        manager.set_external_limits("ocpp", "grid", external_from_periods(periods))

    client = UpstreamClient(UpstreamConfig(url="wss://dso.example/ocpp", charge_point_id="SITE1"),
                            read_meter=meter.read, on_profiles_changed=apply)
    await client.run()   # reconnects with exponential backoff until cancelled
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ocpp.charge_point import ChargePoint
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from websockets.asyncio.client import ClientConnection, connect

from adapters.ocpp.composite import (
    LimitPeriod,
    Transaction,
    composite_schedule,
)
from adapters.ocpp.link import (
    Backoff,
    WebSocketUrl,
    basic_auth,
    boot,
    every,
    keep_connected,
)
from adapters.ocpp.profilehandlers import ProfileHandlers
from adapters.ocpp.profiles import (
    ProfileRules,
    ProfileStore,
)
from adapters.ocpp.versions import BY_NAME, Sample
from energytree.errors import RequestError
from energytree.persist import read_json, write_json_atomic
from energytree.types import format_timestamp

__all__ = ["GridReading", "SiteChargePoint", "UpstreamClient", "UpstreamConfig"]

LOG = logging.getLogger(__name__)
SITE_CONNECTORS = (0, 1)  # the site is one charge point with one connector


class UpstreamConfig(BaseModel):
    """How to reach the grid operator's backend (CSMS) and what to tell it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    url: WebSocketUrl = Field(description="ws:// or wss:// base URL; the id is appended")
    charge_point_id: str = Field(min_length=1, max_length=48,
                                 description="the site's identity at the backend")
    version: Literal["1.6", "2.0.1"] = Field("1.6", description="OCPP version")
    username: str | None = Field(None, description="basic auth (security profile 1/2)")
    password: SecretStr | None = Field(None, description="basic auth; the user defaults to the id")
    ca_file: Path | None = Field(None, description="CA bundle for wss (else system CAs)")
    vendor: str = Field("energytree", description="sent in BootNotification")
    model: str = Field("energytree site", description="sent in BootNotification")
    meter_interval_s: float = Field(60.0, gt=0, description="MeterValues period [s]")
    reconnect_min_s: float = Field(1.0, gt=0, description="first reconnect delay [s]")
    reconnect_max_s: float = Field(300.0, gt=0, description="longest reconnect delay [s]")
    nominal_voltage_v: float = Field(230.0, gt=0, description="for A ↔ W conversion [V]")
    profiles_path: Path | None = Field(None, description="JSON file that keeps the profiles")
    rules: ProfileRules = Field(ProfileRules(), description="what the site accepts as a "
                                                           "charge point")


@dataclass(frozen=True)
class GridReading:
    """The grid reference meter: power [W] (negative = export), import register [Wh], [A]."""

    power_w: float
    energy_import_wh: float | None = None
    currents_a: tuple[float, float, float] | None = None

    def samples(self) -> list[Sample]:
        """The reading as MeterValues samples."""
        measurand = "Power.Active.Import" if self.power_w >= 0 else "Power.Active.Export"
        out = [Sample(abs(self.power_w), measurand, "W")]
        if self.energy_import_wh is not None:
            out.append(Sample(self.energy_import_wh, "Energy.Active.Import.Register", "Wh"))
        for phase, amps in zip(("L1", "L2", "L3"), self.currents_a or (), strict=False):
            out.append(Sample(amps, "Current.Import", "A", phase))
        return out


ProfilesChanged = Callable[[ProfileStore], Awaitable[None] | None]
# A plain function or a coroutine function: the service reads a cached value, others await I/O.
MeterReader = Callable[[], Awaitable[GridReading | None] | GridReading | None]

def _utc_now() -> datetime:
    return datetime.now(UTC)


class SiteChargePoint(ProfileHandlers, ChargePoint):  # type: ignore[misc]
    """The OCPP session of the site; one handler per verb, shared by 1.6 and 2.0.1."""

    def __init__(self, client: UpstreamClient, connection: ClientConnection) -> None:
        super().__init__(client.config.charge_point_id, connection)
        version = client.version
        self._call, self._call_result = version.call, version.call_result
        self._ocpp_version = version.name
        self.version = version
        self.client = client

    connectors = SITE_CONNECTORS

    def profile_store(self) -> ProfileStore:
        return self.client.store

    async def change_profiles(self, edit: Callable[[ProfileStore], Any]) -> Any:
        return await self.client.change(edit)

    def running_transaction(self) -> Transaction | None:
        return self.client.transaction  # the site runs no OCPP transaction

    def profile_context(self) -> tuple[datetime, float, str]:
        client = self.client
        return client.now(), client.config.nominal_voltage_v, client.config.charge_point_id


class UpstreamClient:
    """Keeps one OCPP connection to the backend alive and owns the site's profile store."""

    def __init__(
        self,
        config: UpstreamConfig,
        read_meter: MeterReader | None = None,
        on_profiles_changed: ProfilesChanged | None = None,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.config = config
        self.version = BY_NAME[config.version]
        self.read_meter = read_meter
        self.on_profiles_changed = on_profiles_changed
        self.now = now
        self.transaction: Transaction | None = None  # the site runs no OCPP transaction
        self.store = self._load()
        self.connected = asyncio.Event()  # set while a booted session runs
        self.stopping = False  # set before the run() task is cancelled: no more reconnects
        self.boots = 0  # accepted BootNotifications, for status pages and tests

    def _load(self) -> ProfileStore:
        """The persisted profiles, or an empty store; ConfigError if the file is corrupt."""
        path = self.config.profiles_path
        data = None if path is None else read_json(path)
        if data is None:
            return ProfileStore(self.config.rules)
        return ProfileStore.load(data, self.config.rules)

    async def change(self, edit: Callable[[ProfileStore], Any]) -> Any:
        """Apply ``edit`` to a copy, persist it, then swap it in and notify; all or nothing."""
        candidate = ProfileStore(self.store.rules, self.store.profiles)
        candidate.drop_expired(self.now())
        result = edit(candidate)
        if candidate.profiles == self.store.profiles:
            return result
        if self.config.profiles_path is not None:
            try:
                await asyncio.to_thread(
                    write_json_atomic, self.config.profiles_path, candidate.dump()
                )
            except OSError as exc:
                raise RequestError(f"cannot store the profiles: {exc.strerror}") from exc
        self.store = candidate
        await self._notify()
        return result

    def limit_periods(self, start: datetime, duration_s: int = 600) -> tuple[LimitPeriod, ...]:
        """What the operator allows the site from ``start`` for ``duration_s`` [s].

        The composite of the site's connector, which includes the station-wide profiles.
        600 s is EVerest's PublishChargingScheduleDurationS.
        """
        composite = composite_schedule(
            self.store,
            SITE_CONNECTORS[-1],
            start,
            duration_s,
            None,
            self.config.nominal_voltage_v,
            self.transaction,
        )
        return composite.limit_periods

    async def _notify(self) -> None:
        if self.on_profiles_changed is not None:
            done = self.on_profiles_changed(self.store)
            if inspect.isawaitable(done):
                await done

    async def run(self) -> None:
        """Connect, boot and serve until cancelled; reconnect with exponential backoff.

        Profiles reloaded from ``profiles_path`` are announced once before connecting.
        """
        if self.store.profiles:
            await self._notify()
        backoff = Backoff(self.config.reconnect_min_s, self.config.reconnect_max_s)
        target = f"OCPP upstream {self.config.charge_point_id} → {self.config.url}"
        tls = self.config.url.startswith("wss://")
        await keep_connected(self._connect_once, backoff, lambda: self.boots, target, tls,
                             running=lambda: not self.stopping)

    async def _connect_once(self) -> None:
        async with self._connect() as ws:
            await self._session(ws)

    def _connect(self) -> connect:
        c = self.config
        headers = {}
        if c.username is not None or c.password is not None:
            user = c.username if c.username is not None else c.charge_point_id
            headers = basic_auth(user, c.password.get_secret_value() if c.password else "")
        tls = {"ssl": ssl.create_default_context(cafile=c.ca_file)} if c.ca_file else {}
        return connect(
            f"{c.url.rstrip('/')}/{c.charge_point_id}",
            subprotocols=[self.version.subprotocol],  # type: ignore[list-item]
            additional_headers=headers,
            open_timeout=30,
            **tls,  # wss:// without a CA file uses the system's default context
        )

    async def _session(self, ws: ClientConnection) -> None:
        cp = SiteChargePoint(self, ws)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(cp.start())
                interval = await self._boot(cp)
                for connector in self.version.station_statuses:
                    call = self.version.status_notification(connector, self._stamp())
                    await cp.call(call, suppress=False)
                self.connected.set()
                tasks.create_task(every(interval, lambda: self._heartbeat(cp)))
                if self.read_meter is not None:
                    tasks.create_task(
                        every(self.config.meter_interval_s, lambda: self._meter(cp))
                    )
        finally:
            self.connected.clear()

    def _stamp(self) -> str:
        """Now, as OCPP messages carry it."""
        return format_timestamp(self.now(), whole_seconds=True)

    async def _boot(self, cp: SiteChargePoint) -> float:
        """BootNotification until Accepted; return the heartbeat interval [s] it sets."""
        interval = await boot(cp, self.version, self.config.vendor, self.config.model)
        self.boots += 1
        return interval

    async def _heartbeat(self, cp: SiteChargePoint) -> None:
        await cp.call(self.version.call.Heartbeat(), suppress=False)

    async def _meter(self, cp: SiteChargePoint) -> None:
        assert self.read_meter is not None
        reading = self.read_meter()
        if inspect.isawaitable(reading):
            reading = await reading
        if reading is not None:  # a silent meter sends nothing rather than stale values
            call = self.version.meter_values(0, self._stamp(), reading.samples())
            await cp.call(call, suppress=False)
