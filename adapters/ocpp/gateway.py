"""Every EVSE of the site mirrored to the energy supplier's OCPP backend (cFos "OCPP gateway").

Each EVSE is its own charge point (``<prefix><evse uuid>`` or a mapped id) on its own
websocket, 1.6J or 2.0.1, directly or through the Smart Meter Gateway's CLS channel (an HTTP
CONNECT proxy), with basic auth and/or a client certificate. Session messages go through the
durable ``Outbox``, so billing data survives outages and restarts, in order and once. The
supplier's SetChargingProfile for one EVSE becomes the external-limit source
``supplier:<uuid>`` on that EVSE's node; sources combine by minimum, so the site's own limits
always win. Usage::

    gateway = Gateway(config, manager, evse_uuids, tariff=lambda: variables.value("TARIF"))
    await gateway.start()
    gateway.feed(StateChanged("evse-1", EvseState.Charging, now))   # from the charger side
    await gateway.stop()
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from adapters.ocpp.composite import Transaction, composite_schedule
from adapters.ocpp.evseport import EmbeddedEvses, EvseCommands
from adapters.ocpp.evsewire import CONNECTOR, WIRE, EvseWire
from adapters.ocpp.gatewaylink import EvseLink
from adapters.ocpp.link import TlsFiles, WebSocketUrl, ssl_context
from adapters.ocpp.outbox import Outbox
from adapters.ocpp.profiles import ProfileRules, ProfileStore
from energytree.clock import Clock
from energytree.errors import ConfigError, RequestError
from energytree.gridops import external_from_periods
from energytree.manager import EnergyManager
from energytree.sessions import (
    Authorized,
    Database,
    EvseEvent,
    SessionChange,
    SessionLog,
    SessionTracker,
    StateChanged,
)
from energytree.tasks import cancel_and_wait

__all__ = ["SOURCE", "Gateway", "GatewayConfig"]

LOG = logging.getLogger(__name__)
SOURCE = "supplier"  # external-limit source name prefix: "supplier:<evse uuid>"
MAX_ID_LENGTH = 48  # OCPP 2.0.1 identity; 1.6 backends accept the same


class GatewayConfig(BaseModel):
    """The supplier's backend and how each EVSE appears there."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    url: WebSocketUrl = Field(description="ws:// or wss:// base URL; the id is appended")
    version: Literal["1.6", "2.0.1"] = Field("1.6", description="OCPP version")
    charge_point_prefix: str = Field("", description="id = prefix + EVSE uuid")
    charge_point_ids: dict[str, str] = Field({}, description="EVSE uuid -> id (overrides)")
    username: str | None = Field(None, description="basic auth user; None: the charge point id")
    password: SecretStr | None = Field(None, description="basic auth (security profile 1/2)")
    passwords: dict[str, SecretStr] = Field({}, description="per EVSE uuid, overrides password")
    proxy: str | None = Field(None, description="SMGW CLS channel: http://<address>:3128")
    tls: TlsFiles = Field(TlsFiles(), description="client certificate (security profile 3)")
    db_path: Path = Field(description="SQLite file for sessions, outbox and profiles")
    meter_interval_s: float = Field(60.0, ge=0, description="MeterValues period [s]; 0: all")
    default_id_tag: str = Field("energytree", min_length=1, max_length=20,
                                description="idTag of sessions nobody authorised (1.6)")
    vendor: str = Field("energytree", description="sent in BootNotification")
    model: str = Field("energytree gateway", description="sent in BootNotification")
    reconnect_min_s: float = Field(1.0, gt=0, description="first reconnect delay [s]")
    reconnect_max_s: float = Field(300.0, gt=0, description="longest reconnect delay [s]")
    response_timeout_s: float = Field(30.0, gt=0, description="wait for a CallResult [s]")
    open_timeout_s: float = Field(30.0, gt=0, description="TCP + TLS + websocket handshake [s]")
    profile_horizon_s: int = Field(86_400, gt=0, le=31 * 86_400,
                                   description="composite length and lease TTL [s]")
    profile_refresh_s: float = Field(900.0, gt=0, description="recompute the composites [s]")
    nominal_voltage_v: float = Field(230.0, gt=0, description="for A ↔ W conversion [V]")
    rules: ProfileRules = Field(ProfileRules(), description="what each EVSE accepts as a "
                                                           "charge point")

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, proxy: str | None) -> str | None:
        if proxy is not None and not proxy.startswith(("http://", "https://")):
            raise ValueError("must be an HTTP CONNECT proxy: http://host:port")
        return proxy

    @model_validator(mode="after")
    def _tls_needs_wss(self) -> GatewayConfig:
        if self.tls.model_dump(exclude_none=True) and not self.url.startswith("wss://"):
            raise ValueError("tls files need a wss:// url")
        return self

    def charge_point_id(self, evse: str) -> str:
        return self.charge_point_ids.get(evse, f"{self.charge_point_prefix}{evse}")

    def secret(self, evse: str) -> str | None:
        chosen = self.passwords.get(evse, self.password)
        return None if chosen is None else chosen.get_secret_value()


class Gateway:
    """Owns the session tracker, the outbox and one ``EvseLink`` per EVSE."""

    def __init__(self, config: GatewayConfig, manager: EnergyManager, evses: Sequence[str],
                 commands: EvseCommands | None = None,
                 tariff: Callable[[], float | None] = lambda: None,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.manager = manager
        self.clock = clock or manager.clock
        self.wire: EvseWire = WIRE[config.version]
        self.db = Database(config.db_path)
        self.log = SessionLog(self.db)
        self.outbox = Outbox(self.db)
        self.db.conn.execute("CREATE TABLE IF NOT EXISTS profiles"
                             " (evse TEXT PRIMARY KEY, data TEXT NOT NULL)")
        self.tracker = SessionTracker(self.log, tariff, self._on_session)
        self.commands = commands or EmbeddedEvses(self.feed, self.clock)
        self.ssl = ssl_context(config.tls) if config.url.startswith("wss://") else None
        self._sampled: dict[int, datetime] = {}  # session id -> last periodic meter value
        self.links = {uuid: EvseLink(self, uuid, self._load_profiles(uuid)) for uuid in evses}
        self._tasks: list[asyncio.Task[None]] = []
        self.stopping = False  # set by stop(): the connections end their loops
        for uuid in evses:
            cp_id = config.charge_point_id(uuid)
            if not 0 < len(cp_id) <= MAX_ID_LENGTH:
                raise ConfigError(f"EVSE {uuid}: charge point id {cp_id!r} must have 1..48 chars")

    # ---- the charger side -----------------------------------------------------------------

    def feed(self, event: EvseEvent) -> None:
        """One event of the charger side: session change and its messages in one transaction."""
        link = self.links.get(event.evse)
        if link is None:
            return
        with self.db.transaction():
            if isinstance(event, Authorized) and link.connected.is_set():
                self._enqueue(event.evse, *self.wire.authorize(event.id_tag))
            self.tracker.feed(event)
        if isinstance(event, StateChanged):
            link.wake.set()  # a new StatusNotification

    def _on_session(self, change: SessionChange) -> None:
        s, wire = change.session, self.wire
        tag = s.id_tag or self.config.default_id_tag
        if change.kind == "started":
            self._sampled[s.id] = s.start
            self._enqueue(s.evse, *wire.started(s, tag, self.outbox.next_seq_no(s.id)), s.id)
        elif change.kind == "meter" and change.reading is not None:
            last = self._sampled.get(s.id, s.start)
            if change.reading.at - last >= timedelta(seconds=self.config.meter_interval_s):
                self._sampled[s.id] = change.reading.at
                seq = self.outbox.next_seq_no(s.id)
                self._enqueue(s.evse, *wire.updated(s, change.reading, seq), s.id)
            return
        else:
            self._sampled.pop(s.id, None)
            self._enqueue(s.evse, *wire.ended(s, tag, self.outbox.next_seq_no(s.id)), s.id)
            tx = self.transaction_id(s.id)
            if tx is not None:  # its TxProfiles end with it (1.6 §3.13.3)
                self.links[s.evse].change(lambda store: store.clear_transaction(tx))
        self.apply_profiles(s.evse)

    def _enqueue(self, evse: str, action: str, payload: dict[str, object],
                 session: int | None = None) -> None:
        self.outbox.enqueue(evse, self.config.version, action, payload, session)
        self.links[evse].wake.set()

    def transaction_id(self, session: int) -> str | None:
        """The id the backend knows a session by: its own (1.6) or our uid (2.0.1)."""
        if self.config.version == "1.6":
            return self.outbox.transaction_id(session)
        found = self.log.get(session)
        return None if found is None else found.uid

    def transaction(self, evse: str) -> Transaction | None:
        """The running transaction of ``evse`` for TxProfiles and Relative profiles."""
        session = self.tracker.active(evse)
        tx = None if session is None else self.transaction_id(session.id)
        return None if session is None or tx is None else Transaction(id=tx, start=session.start)

    # ---- supplier profiles → manager ------------------------------------------------------

    def apply_profiles(self, evse: str) -> None:
        """The EVSE's composite as the source ``supplier:<uuid>`` (cleared when empty)."""
        name, store = f"{SOURCE}:{evse}", self.links[evse].store
        try:
            if not store.profiles:
                self.manager.clear_external_limits(name)
                return
            horizon = self.config.profile_horizon_s
            composite = composite_schedule(store, CONNECTOR, self.clock.now(), horizon, None,
                                           self.config.nominal_voltage_v, self.transaction(evse))
            limits = external_from_periods(composite.limit_periods)
            self.manager.set_external_limits(name, evse, limits, ttl_s=horizon)
        except RequestError as exc:
            LOG.warning("EVSE %s: supplier limits not applied: %s", evse, exc)

    def save_profiles(self, evse: str, store: ProfileStore) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO profiles (evse, data) VALUES (?, ?) ON CONFLICT (evse)"
                         " DO UPDATE SET data = excluded.data", (evse, json.dumps(store.dump())))

    def _load_profiles(self, evse: str) -> ProfileStore:
        row = self.db.conn.execute("SELECT data FROM profiles WHERE evse = ?",
                                   (evse,)).fetchone()
        if row is None:
            return ProfileStore(self.config.rules)
        return ProfileStore.load(json.loads(row["data"]), self.config.rules)

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Apply restored profiles, then connect every EVSE (each reconnects on its own)."""
        for uuid, link in self.links.items():
            if link.store.profiles:
                self.apply_profiles(uuid)
            self._tasks.append(asyncio.create_task(link.run(), name=f"gateway-{uuid}"))
        self._tasks.append(asyncio.create_task(self._refresh(), name="gateway-profiles"))

    async def stop(self) -> None:
        self.stopping = True
        await cancel_and_wait(self._tasks)
        self._tasks = []
        self.db.close()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _refresh(self) -> None:
        """Recurring and expiring profiles move on with time: recompute now and then."""
        while True:
            await asyncio.sleep(self.config.profile_refresh_s)
            for uuid, link in self.links.items():
                dropped = link.store.drop_expired(self.clock.now())
                if dropped:
                    self.save_profiles(uuid, link.store)
                if dropped or link.store.profiles:
                    self.apply_profiles(uuid)
