"""The CSMS towards the site's own chargers: OCPP 1.6J and 2.0.1 on one websocket port.

Chargers connect to ``ws://host:port/<anything>/<charger id>`` offering ``ocpp1.6`` or
``ocpp2.0.1``; the subprotocol picks the wire table, the handlers are shared. What they say
feeds the manager (states, measurements); what the manager enforces goes back as a
TxDefaultProfile per connector/EVSE (see ``charger_limits`` for the profile and its lease).
Usage::

    async with EnergyManager(tree) as manager, CsmsServer(config, manager):
        await asyncio.Event().wait()

Decisions:

* **Handshake.** An id not on the allow-list, a missing or wrong password (HTTP basic auth,
  security profile 1: user = charger id, compared in constant time) → HTTP 401 before the
  websocket opens. Unknown ids and wrong passwords get the same answer, so the allow-list is
  not revealed. A charger without a configured password needs none. No common subprotocol →
  HTTP 400 (websockets). A second connection with the same id replaces the first.
* **Authorization** of id tags is not ours: Authorize, StartTransaction and TransactionEvent
  accept every token.
* **Offline.** When a charger's connection ends, its EVSEs keep their last state (no session
  starts or ends because of a disconnect) and are listed in ``offline``. Those that may be
  drawing (in a transaction or an active state) are *reserved* (``manager.reserve``, source
  ``offline:<uuid>``) at exactly what the charger may draw by itself: its last accepted limit
  until that profile's lease ends, then its failsafe current. A reservation is served before
  anybody else in every tick — rotation never skips it — and the other EVSEs share what is
  left; idle EVSEs reserve nothing. A charger that never accepted a profile is left at its own
  maximum.
* **Back online.** A charger is back at its BootNotification or at its first other message (a
  charger that reconnects without rebooting was accepted before), at the latest
  ``BOOT_GRACE_S`` after connecting: its reservations are released, its statuses take over and
  its profiles are sent again at once.
* **Transactions** (id → connector) belong to the charger, not to one connection: a 2.0.1
  ``TransactionEvent`` without ``evse`` (E01.FR.16) is attributed by its id after a reconnect,
  and ``Occupied`` during a transaction means charging or suspended, never "waiting for
  authorisation".
* **Restarts.** With ``state_path`` (``serve`` puts it under ``--state-dir``) the accepted
  limits, the transactions and the EVSEs' last states survive a restart
  (``charger_memory``): chargers known there start offline with their last states, the
  drawing EVSEs pinned, until they connect.
* **Silent manager.** Once the manager's limits are past their ``valid_until``, chargers are
  sent their failsafe current.
* TxProfiles are not sent: the TxDefaultProfile of the connector covers every transaction on
  it and avoids the 1.6 race between StartTransaction's answer and a TxProfile.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any

from ocpp.charge_point import ChargePoint
from ocpp.exceptions import OCPPError, PropertyConstraintViolationError
from ocpp.routing import after, on
from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action  # the shared actions have the same names in 1.6
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from adapters.ocpp import charger_limits, chargers
from adapters.ocpp.charger_limits import Grant, Pushed
from adapters.ocpp.charger_memory import ChargerMemory, is_drawing
from adapters.ocpp.chargers import ChargerConfig, CsmsConfig
from adapters.ocpp.evseport import EventSink
from adapters.ocpp.profiles import ProfileRules
from adapters.ocpp.versions import CSMS_BY_SUBPROTOCOL, CsmsWire
from energytree.clock import Clock, SystemClock
from energytree.errors import RequestError
from energytree.manager import EnergyManager
from energytree.persist import read_json
from energytree.sessions import (
    ACTIVE_STATES,
    Authorized,
    EvseEvent,
    MeterReading,
    StateChanged,
)
from energytree.types import EnforcedLimits, EvseState, Powermeter, format_timestamp

__all__ = ["ChargerSession", "CsmsConfig", "CsmsServer"]

log = logging.getLogger(__name__)
SUBPROTOCOLS = [Subprotocol(s) for s in CSMS_BY_SUBPROTOCOL]
ACCEPTED = {"status": "Accepted"}
EPOCH_2020 = 1_577_836_800  # 1.6 transaction ids count seconds from here, so they fit int32
BOOT_GRACE_S = 5.0  # [s] a connection that sends no BootNotification is served after this


@contextlib.contextmanager
def _as_call_error() -> Iterator[None]:
    """Our RequestError as the OCPP CallError the library sends back."""
    try:
        yield
    except RequestError as exc:
        raise PropertyConstraintViolationError(str(exc)) from exc


async def _wait(event: asyncio.Event, timeout_s: float) -> None:
    """Wait for ``event`` at most ``timeout_s``. Not ``asyncio.wait_for``: on Python 3.11 it
    can swallow a cancellation that meets the event being set, and the task never ends."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await event.wait()


class ChargerSession(ChargePoint):  # type: ignore[misc]
    """One charger's connection: one handler per verb for both versions, and the driver task
    that reads its smart-charging settings and keeps its profiles current."""

    def __init__(self, server: CsmsServer, charger: ChargerConfig, ws: ServerConnection,
                 wire: CsmsWire) -> None:
        super().__init__(charger.id, ws, response_timeout=server.config.response_timeout_s)
        v = wire.version
        self._call, self._call_result, self._ocpp_version = v.call, v.call_result, v.name
        self.server, self.charger, self.wire, self.version = server, charger, wire, v
        self.booted = asyncio.Event()
        self.wake = asyncio.Event()  # set on every publication of the manager
        self.stack_level = 0
        self.pushed: dict[int, Pushed] = {}  # by connector, accepted in this session
        self.refused_until: dict[int, datetime] = {}
        self.transactions = server.memory.transactions_of(charger.id)  # id → connector

    # ---- charger → CSMS --------------------------------------------------------------------

    @on(Action.boot_notification)
    async def on_boot_notification(self, **payload: Any) -> Any:
        return self.version.call_result.BootNotification(
            current_time=self.server.iso_now(), status="Accepted",
            interval=self.server.config.heartbeat_interval_s)

    @after(Action.boot_notification)
    def after_boot_notification(self, **payload: Any) -> None:
        self.booted.set()  # the driver starts now: nothing is sent before the boot's answer
        self.pushed.clear()  # a reboot may have lost our profiles: send them again
        self.wake.set()

    def _heard(self) -> None:
        """A message other than a boot: a charger that sends one was accepted before (it
        reconnected without rebooting), so it is served from now on."""
        self.booted.set()

    @on(Action.heartbeat)
    async def on_heartbeat(self, **payload: Any) -> Any:
        self._heard()
        return self.version.call_result.Heartbeat(current_time=self.server.iso_now())

    @on(Action.status_notification)
    async def on_status_notification(self, **payload: Any) -> Any:
        self._heard()
        connector = payload[self.version.connector_field]
        with _as_call_error():
            in_transaction = connector in self.transactions.values()
            state = chargers.evse_state(payload[self.wire.status_field], in_transaction)
        if connector >= 1 and state is None:  # 2.0.1 Occupied in a transaction
            state = self._charging_or_suspended(connector)
        if connector >= 1 and state is not None:
            self._set_state(connector, state)
        return self.version.call_result.StatusNotification()

    def _charging_or_suspended(self, connector: int) -> EvseState | None:
        """The EVSE's active state as it was; Charging (it wants power) if it was not active,
        e.g. after a restart of energytree."""
        known = self.server.memory.states.get(chargers.evse_uuid(self.charger, connector))
        return None if known in ACTIVE_STATES else EvseState.Charging

    @on(Action.meter_values)
    async def on_meter_values(self, **payload: Any) -> Any:
        self._heard()
        connector = payload[self.version.connector_field]
        with _as_call_error():
            reading = chargers.powermeter(self.wire, payload["meter_value"],
                                          self._meter_id(connector))
        if connector >= 1 and reading is not None:
            self._measure(connector, reading)
        return self.version.call_result.MeterValues()

    @on(Action.authorize)
    async def on_authorize(self, **payload: Any) -> Any:
        self._heard()
        return self.version.call_result.Authorize(**{self.wire.id_info_field: ACCEPTED})

    @on(Action16.start_transaction)
    async def on_start_transaction(self, connector_id: int, meter_start: int, timestamp: str,
                                   **payload: Any) -> Any:
        self._heard()
        with _as_call_error():
            reading = chargers.register_reading(meter_start, timestamp,
                                                self._meter_id(connector_id))
        transaction_id = self.server.next_transaction_id()
        self.transactions[str(transaction_id)] = connector_id
        self.server.remember()
        self._authorized(connector_id, payload.get("id_tag"))
        self._set_state(connector_id, EvseState.PrepareCharging)
        self._measure(connector_id, reading)
        return self.version.call_result.StartTransaction(
            transaction_id=transaction_id, id_tag_info=ACCEPTED)

    @on(Action16.stop_transaction)
    async def on_stop_transaction(self, transaction_id: int, meter_stop: int, timestamp: str,
                                  **payload: Any) -> Any:
        self._heard()
        connector = self.transactions.get(str(transaction_id))
        with _as_call_error():
            reading = chargers.register_reading(meter_stop, timestamp,
                                                self._meter_id(connector or 0))
        if connector is not None:
            del self.transactions[str(transaction_id)]
            self.server.remember()
            self._set_state(connector, chargers.ended_state(payload.get("reason")))
            self._measure(connector, reading)
        info = {"id_tag_info": ACCEPTED} if payload.get("id_tag") else {}
        return self.version.call_result.StopTransaction(**info)

    @on(Action.transaction_event)
    async def on_transaction_event(self, event_type: str, trigger_reason: str,
                                   transaction_info: dict[str, Any], **payload: Any) -> Any:
        self._heard()
        tx = transaction_info["transaction_id"]
        connector = (payload.get("evse") or {}).get("id") or self.transactions.get(tx)
        news = event_type == "Started" or tx not in self.transactions  # e.g. after our restart
        with _as_call_error():
            reading = chargers.powermeter(self.wire, payload.get("meter_value") or [],
                                          self._meter_id(connector or 0))
            state = self._transaction_state(event_type, trigger_reason, transaction_info, news)
        if connector:
            self._authorized(connector, (payload.get("id_token") or {}).get("id_token"))
            if event_type == "Ended":
                self.transactions.pop(tx, None)
            else:
                self.transactions[tx] = connector
            self.server.remember()
            if state is not None:
                self._set_state(connector, state)
            if reading is not None:
                self._measure(connector, reading)
        else:
            log.warning("%s: TransactionEvent %s names no EVSE and transaction %s is unknown; "
                        "ignored", self.id, event_type, tx)
        info = {"id_token_info": ACCEPTED} if payload.get("id_token") else {}
        return self.version.call_result.TransactionEvent(**info)

    @staticmethod
    def _transaction_state(event_type: str, trigger: str, info: dict[str, Any], news: bool
                           ) -> EvseState | None:
        """The state a TransactionEvent tells; a transaction new to us wants power."""
        if event_type == "Ended":
            return chargers.ended_state(info.get("stopped_reason"), trigger)
        charging = info.get("charging_state")
        if charging is not None:
            return chargers.evse_state(charging, in_transaction=True)
        return EvseState.PrepareCharging if news else None

    def _meter_id(self, connector: int) -> str:
        return f"{self.charger.id}/{connector}"

    def _set_state(self, connector: int, state: EvseState) -> None:
        uuid = chargers.evse_uuid(self.charger, connector)
        if self.server.feed(lambda m, u: m.set_evse_state(u, state), uuid):
            self.server.tell_sessions(StateChanged(uuid, state, self.server.clock.now()))
        if self.server.memory.states.get(uuid) != state:
            self.server.memory.states[uuid] = state
            self.server.remember()

    def _authorized(self, connector: int, id_tag: str | None) -> None:
        """Tell the session log (if any) which id tag a session belongs to."""
        if id_tag:
            self.server.tell_sessions(Authorized(chargers.evse_uuid(self.charger, connector),
                                                 id_tag, self.server.clock.now()))

    def _measure(self, connector: int, reading: Powermeter) -> None:
        self.server.measure(chargers.evse_uuid(self.charger, connector), reading)

    # ---- CSMS → charger --------------------------------------------------------------------

    async def drive(self) -> None:
        """After the boot (or a grace time: a 1.6 charger that only reconnects does not boot
        again): read the smart-charging settings, then keep the profiles current."""
        await _wait(self.booted, BOOT_GRACE_S)
        self.server.came_back(self.charger)
        rules = await self._read_rules()
        self.stack_level = rules.max_stack_level
        while True:
            self.wake.clear()  # before, so a publication during a push is not lost
            for connector, grant in self.server.grants(self.charger):
                now = self.server.clock.now()
                if self.refused_until.get(connector, now) > now:
                    continue
                if self._due(connector, grant, now):
                    await self._push(connector, grant, rules, now)
            await _wait(self.wake, 10.0)

    def _due(self, connector: int, grant: Grant, now: datetime) -> bool:
        config = self.server.config
        return charger_limits.needs_push(self.pushed.get(connector), grant, now,
                                         config.change_threshold_a, config.change_threshold_pct)

    async def _read_rules(self) -> ProfileRules:
        names = list(self.wire.settings.values())
        try:
            result = await self.call(self.wire.read_settings(names), suppress=False)
            values = self.wire.setting_values(result)
        except (OCPPError, TimeoutError) as exc:
            log.warning("%s: cannot read %s (%r); assuming the defaults", self.id, names, exc)
            values = {}
        rules = charger_limits.charger_rules(self.wire, values)
        log.info("%s: OCPP %s, smart charging %s", self.id, self.version.name, rules)
        return rules

    async def _push(self, connector: int, grant: Grant, rules: ProfileRules,
                    now: datetime) -> None:
        """SetChargingProfile at our stack level; if refused there, once more at level 0."""
        config = self.server.config
        for level in dict.fromkeys((self.stack_level, 0)):
            profile = charger_limits.tx_default_profile(
                connector, grant, rules, now, stack_level=level,
                failsafe_a=config.failsafe_a(self.charger), lease_s=config.lease_s,
                voltage_v=config.nominal_voltage_v)
            request = charger_limits.set_profile_call(self.version, profile)
            status = await self._request_status(request)
            if status == "Accepted":
                if level != self.stack_level:
                    log.warning("%s refused stack level %d but accepted 0; using 0 from now on",
                                self.id, self.stack_level)
                    self.stack_level = level
                pushed = Pushed(grant, now, charger_limits.lease_end(profile), level)
                self.pushed[connector] = pushed
                await self.server.accepted(chargers.evse_uuid(self.charger, connector), pushed)
                return
            log.warning("%s: connector %d refused a TxDefaultProfile at stack level %d: %s",
                        self.id, connector, level, status)
        log.error("%s: connector %d refused every profile; trying again in %.0f s", self.id,
                  connector, config.retry_after_s)
        self.refused_until[connector] = now + timedelta(seconds=config.retry_after_s)

    async def _request_status(self, request: Any) -> str:
        try:
            result = await self.call(request, suppress=False)
        except OCPPError as exc:
            return f"CallError {exc!r}"
        except TimeoutError:
            return "no answer"
        return str(result.status)


class CsmsServer:
    """The websocket server, the allow-list, and what the sessions share."""

    def __init__(self, config: CsmsConfig, manager: EnergyManager,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.manager = manager
        self.clock = clock or SystemClock()
        self.chargers = {c.id: c for c in config.chargers}
        self.sessions: dict[str, ChargerSession] = {}
        self.limits: dict[str, EnforcedLimits] = {}  # the latest publication, by EVSE uuid
        self.memory = ChargerMemory()  # accepted limits, transactions, last states
        self.offline: set[str] = set()  # EVSE uuids of chargers that are not connected
        self.event_sink: EventSink | None = None  # the session log / gateway, if wired
        self._readings: dict[str, datetime] = {}
        self._not_in_tree: set[str] = set()
        first_id = max(int(self.clock.now().timestamp()) - EPOCH_2020, 1)
        self._transaction_ids = itertools.count(first_id)
        self._server: Server | None = None
        self._follower: asyncio.Task[None] | None = None
        self._dirty = asyncio.Event()
        self._closing = False
        self._keeper: asyncio.Task[None] | None = None

    @property
    def pushed(self) -> dict[str, Pushed]:
        """The last accepted profile by EVSE uuid."""
        return self.memory.pushed

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Listen; chargers known from the state file are offline until they connect."""
        path = self.config.state_path
        if path is not None:
            self.memory = ChargerMemory.load(await asyncio.to_thread(read_json, path))
            self._keeper = asyncio.create_task(self._keep_memory(path), name="csms-memory")
        for uuid, state in self.memory.states.items():
            self.feed(lambda m, u, s=state: m.set_evse_state(u, s), uuid)
        known = {*self.memory.pushed, *self.memory.states}
        for charger in self.config.chargers:
            if known.intersection(chargers.evse_uuid(charger, c)
                                  for c in chargers.connectors_in(charger, known)):
                self.went_offline(charger)
        self._follower = asyncio.create_task(self._follow_limits(), name="csms-limits")
        self._server = await serve(self._handle, self.config.host, self.config.port,
                                   subprotocols=SUBPROTOCOLS, process_request=self._authorize)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        if self._keeper is not None:  # not cancelled: a write in its thread would go on
            self._closing = True
            self._dirty.set()
            await self._keeper

    def remember(self) -> None:
        """The memory changed: it is written soon, off the event loop (writes coalesce)."""
        self._dirty.set()

    async def _keep_memory(self, path: Path) -> None:
        """The one writer of the state file; ``stop`` ends it after a last write."""
        while not self._closing:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.memory.save(path)
            except OSError as exc:
                log.error("cannot write %s: %s", path, exc)

    async def __aenter__(self) -> CsmsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def iso_now(self) -> str:
        return format_timestamp(self.clock.now())

    def next_transaction_id(self) -> int:
        return next(self._transaction_ids)

    def grants(self, charger: ChargerConfig) -> list[tuple[int, Grant]]:
        """What the manager grants each of the charger's connectors now; once the manager's
        limits are past their ``valid_until`` (it stopped publishing), the failsafe current."""
        now, result = self.clock.now(), []
        failsafe = Grant(charger_limits.floor_01(self.config.failsafe_a(charger)))
        for connector in chargers.connectors_in(charger, self.limits):
            limits = self.limits.get(chargers.evse_uuid(charger, connector))
            if limits is None:
                continue
            fresh = limits.valid_until is None or limits.valid_until >= now
            volts = self.config.nominal_voltage_v
            grant = charger_limits.grant_for(limits, volts) if fresh else failsafe
            result.append((connector, grant))
        return result

    def feed(self, action: Callable[[EnergyManager, str], object], uuid: str) -> bool:
        """``action(manager, uuid)``; an EVSE the tree lacks is logged once, not an error."""
        try:
            action(self.manager, uuid)
        except RequestError as exc:
            if uuid not in self._not_in_tree:
                log.warning("EVSE %s: %s (check the connector map)", uuid, exc)
            self._not_in_tree.add(uuid)
            return False
        return True

    def tell_sessions(self, event: EvseEvent) -> None:
        """The session log (or gateway) hears each state and register as it comes: a
        transaction's first register is its start, not whatever a later poll finds."""
        if self.event_sink is not None and event.evse not in self._not_in_tree:
            self.event_sink.feed(event)

    def serves(self, uuid: str) -> bool:
        """Is ``uuid`` the EVSE of one of our chargers' connectors?"""
        return any(chargers.evse_uuid(c, n) == uuid for c in self.config.chargers
                   for n in chargers.connectors_in(c, [uuid]))

    def measure(self, uuid: str, reading: Powermeter) -> None:
        """Report ``reading`` unless a newer one was (buffered MeterValues come late)."""
        at = reading.timestamp
        last = self._readings.get(uuid)
        if at is not None and last is not None and at < last:
            return
        if at is not None:
            self._readings[uuid] = at
        if self.feed(lambda m, u: m.report_measurement(u, reading), uuid) and \
                reading.energy_Wh_import is not None and reading.energy_Wh_import.total is not None:
            power = reading.power_W.total if reading.power_W else None
            self.tell_sessions(MeterReading(uuid, reading.energy_Wh_import.total, power or 0.0,
                                            self.clock.now()))

    async def accepted(self, uuid: str, pushed: Pushed) -> None:
        """Remember (and persist) what a charger accepted: its offline pin."""
        self.memory.pushed[uuid] = pushed
        self.remember()

    def _connectors(self, charger: ChargerConfig) -> list[int]:
        known = [*self.limits, *self.memory.pushed, *self.memory.states]
        return chargers.connectors_in(charger, known)

    def came_back(self, charger: ChargerConfig) -> None:
        for connector in self._connectors(charger):
            uuid = chargers.evse_uuid(charger, connector)
            self.offline.discard(uuid)
            self.feed(lambda m, u: m.reserve(u, chargers.offline_source(u), None), uuid)

    def went_offline(self, charger: ChargerConfig) -> None:
        """Pin the drawing EVSEs at what the charger may draw on its own (module docstring);
        every EVSE keeps its last state."""
        now = self.clock.now()
        failsafe = self.config.failsafe_a(charger)
        running = set(self.memory.transactions_of(charger.id).values())
        pinned = []
        for connector in self._connectors(charger):
            uuid = chargers.evse_uuid(charger, connector)
            self.offline.add(uuid)
            if not is_drawing(self.memory.states.get(uuid), connector in running):
                continue
            pin = charger_limits.offline_limits(self.memory.pushed.get(uuid), failsafe, now)
            if pin is not None:
                name = chargers.offline_source(uuid)
                self.feed(lambda m, u, p=pin, n=name: m.reserve(u, n, p), uuid)
                pinned.append(uuid)
        log.warning("charger %s is offline; drawing EVSEs pinned at their own limits: %s",
                    charger.id, ", ".join(pinned) or "none")

    async def _follow_limits(self) -> None:
        async for published in self.manager.subscribe():
            self.limits = {x.uuid: x for x in published}
            for session in self.sessions.values():
                session.wake.set()

    def _authorize(self, connection: ServerConnection, request: Request) -> Response | None:
        charger = self.chargers.get(chargers.charger_id(request.path))
        if chargers.credentials_ok(charger, request.headers):
            return None
        log.warning("refused charger %r from %s", chargers.charger_id(request.path),
                    connection.remote_address)
        response = connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="energytree", charset="UTF-8"'
        return response

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None and ws.subprotocol is not None
        charger = self.chargers[chargers.charger_id(ws.request.path)]
        session = ChargerSession(self, charger, ws, CSMS_BY_SUBPROTOCOL[ws.subprotocol])
        old, self.sessions[charger.id] = self.sessions.get(charger.id), session
        if old is not None:
            log.warning("charger %s connected again; closing its older connection", charger.id)
            await old._connection.close()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(session.start())
                tasks.create_task(session.drive())
        except* ConnectionClosed:
            pass
        except* Exception as group:
            log.error("charger %s: session failed: %r", charger.id, group.exceptions[0],
                      exc_info=group.exceptions[0])
        finally:
            if self.sessions.get(charger.id) is session:
                del self.sessions[charger.id]
                self.went_offline(charger)
