"""One EVSE's connection to the supplier's backend: sender, handlers, reconnects.

The sender sends the EVSE's outbox strictly in order, one call at a time, with each message's
own id, and acknowledges only on a CallResult; then the current StatusNotification. The
handlers answer the supplier: profiles go to the EVSE's ``ProfileStore`` and on to the
manager, remote commands through the ``EvseCommands`` port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ocpp.charge_point import ChargePoint
from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action  # the shared actions have the same names in 1.6
from websockets.asyncio.client import ClientConnection, connect

from adapters.ocpp.composite import Transaction
from adapters.ocpp.evsewire import CONNECTOR, iso
from adapters.ocpp.link import (
    Backoff,
    basic_auth,
    boot,
    every,
    keep_connected,
)
from adapters.ocpp.outbox import Message
from adapters.ocpp.profilehandlers import ProfileHandlers
from adapters.ocpp.profiles import ProfileStore

if TYPE_CHECKING:
    from adapters.ocpp.gateway import Gateway

__all__ = ["EvseChargePoint", "EvseLink"]

LOG = logging.getLogger(__name__)
MESSAGE_ATTEMPTS = 3  # a message the backend answers with CallError this often is dropped
ACCEPTED, REJECTED = "Accepted", "Rejected"


def _status(ok: bool) -> str:
    return ACCEPTED if ok else REJECTED


class EvseChargePoint(ProfileHandlers, ChargePoint):  # type: ignore[misc]
    """The supplier's view of one EVSE; one handler per verb, both versions."""

    def __init__(self, link: EvseLink, ws: ClientConnection) -> None:
        gateway = link.gateway
        super().__init__(link.cp_id, ws, response_timeout=gateway.config.response_timeout_s)
        v = gateway.wire.version
        self._call, self._call_result, self._ocpp_version = v.call, v.call_result, v.name
        self.version, self.link, self.gateway = v, link, gateway

    # ---- smart charging (ProfileHandlers) ---------------------------------------------

    connectors = (0, CONNECTOR)

    def profile_store(self) -> ProfileStore:
        return self.link.store

    async def change_profiles(self, edit: Callable[[ProfileStore], Any]) -> Any:
        return self.link.change(edit)

    def running_transaction(self) -> Transaction | None:
        return self.gateway.transaction(self.link.uuid)

    def profile_context(self) -> tuple[datetime, float, str]:
        gw = self.gateway
        return gw.clock.now(), gw.config.nominal_voltage_v, f"EVSE {self.link.uuid}"

    # ---- remote commands (1.6) -----------------------------------------------------------

    @on(Action16.remote_start_transaction)
    async def on_remote_start_transaction(self, id_tag: str, **payload: Any) -> Any:
        ok = payload.get("connector_id") in (None, CONNECTOR) and await self._ask(
            lambda c: c.remote_start(self.link.uuid, id_tag))
        return self.version.call_result.RemoteStartTransaction(status=_status(ok))

    @on(Action16.remote_stop_transaction)
    async def on_remote_stop_transaction(self, transaction_id: int, **payload: Any) -> Any:
        ok = self._runs(str(transaction_id)) and await self._ask(
            lambda c: c.remote_stop(self.link.uuid))
        return self.version.call_result.RemoteStopTransaction(status=_status(ok))

    @on(Action16.get_configuration)
    async def on_get_configuration(self, key: list[str] | None = None, **payload: Any) -> Any:
        keys = key or []
        values = await self._settings(keys, "MeterValueSampleInterval")
        known = [{"key": k, "readonly": True, "value": x} for k, x in values.items()]
        unknown = [k for k in keys if k not in values]
        return self.version.call_result.GetConfiguration(
            configuration_key=known, unknown_key=unknown or None)

    # ---- remote commands (2.0.1) ---------------------------------------------------------

    @on(Action.request_start_transaction)
    async def on_request_start_transaction(self, id_token: dict[str, Any], **payload: Any
                                           ) -> Any:
        tag = id_token["id_token"]
        ok = payload.get("evse_id") in (None, CONNECTOR) and await self._ask(
            lambda c: c.remote_start(self.link.uuid, tag))
        return self.version.call_result.RequestStartTransaction(status=_status(ok))

    @on(Action.request_stop_transaction)
    async def on_request_stop_transaction(self, transaction_id: str, **payload: Any) -> Any:
        ok = self._runs(transaction_id) and await self._ask(
            lambda c: c.remote_stop(self.link.uuid))
        return self.version.call_result.RequestStopTransaction(status=_status(ok))

    @on(Action.get_variables)
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **payload: Any
                               ) -> Any:
        names = [f"{d['component']['name']}.{d['variable']['name']}" for d in get_variable_data]
        values = await self._settings(names, "SampledDataCtrlr.TxUpdatedInterval")
        results = []
        for name, data in zip(names, get_variable_data, strict=True):
            entry = {"component": data["component"], "variable": data["variable"]}
            if name in values:
                results.append(entry | {"attribute_status": ACCEPTED,
                                        "attribute_value": values[name]})
            else:
                results.append(entry | {"attribute_status": "UnknownVariable"})
        return self.version.call_result.GetVariables(get_variable_result=results)

    # ---- both ----------------------------------------------------------------------------

    @on(Action.reset)
    async def on_reset(self, type: str, **payload: Any) -> Any:
        hard = type in ("Hard", "Immediate")
        ok = await self._ask(lambda c: c.reset(self.link.uuid, hard))
        return self.version.call_result.Reset(status=_status(ok))

    def _runs(self, transaction_id: str) -> bool:
        """Whether ``transaction_id`` is the session running on this EVSE."""
        session = self.gateway.tracker.active(self.link.uuid)
        return session is not None and self.gateway.transaction_id(session.id) == transaction_id

    async def _ask(self, command: Callable[[Any], Awaitable[bool]]) -> bool:
        """A command through the port; a failing charger side means Rejected, not an error."""
        try:
            return bool(await command(self.gateway.commands))
        except Exception:
            LOG.exception("EVSE %s: the charger side failed a remote command", self.link.uuid)
            return False

    async def _settings(self, names: list[str], interval_name: str) -> dict[str, str]:
        own = {interval_name: str(round(self.gateway.config.meter_interval_s))}
        try:
            theirs = await self.gateway.commands.get_configuration(self.link.uuid, names)
        except Exception:
            LOG.exception("EVSE %s: the charger side failed GetConfiguration", self.link.uuid)
            theirs = {}
        found = {**theirs, **own}
        return {k: x for k, x in found.items() if not names or k in names}


class EvseLink:
    """Keeps one EVSE's connection alive and owns its profile store."""

    def __init__(self, gateway: Gateway, uuid: str, store: ProfileStore) -> None:
        self.gateway, self.uuid, self.store = gateway, uuid, store
        config = gateway.config
        self.cp_id = config.charge_point_id(uuid)
        self.url = f"{config.url.rstrip('/')}/{self.cp_id}"
        self.wake = asyncio.Event()  # a message was queued or the state changed
        self.connected = asyncio.Event()  # set while a booted session runs
        self.boots = 0
        self._attempts: dict[int, int] = {}  # message seq -> CallErrors so far
        via = f" via proxy {config.proxy}" if config.proxy else ""
        self.target = f"EVSE {uuid}: no connection to {self.url}{via}"

    def change(self, edit: Callable[[ProfileStore], Any]) -> Any:
        """Apply ``edit`` to a copy, store it, swap it in and update the manager."""
        candidate = ProfileStore(self.store.rules, self.store.profiles)
        candidate.drop_expired(self.gateway.clock.now())
        result = edit(candidate)
        if candidate.profiles != self.store.profiles:
            self.gateway.save_profiles(self.uuid, candidate)
            self.store = candidate
            self.gateway.apply_profiles(self.uuid)
        return result

    async def run(self) -> None:
        """Connect, boot and serve until cancelled; reconnect with exponential backoff."""
        c = self.gateway.config
        backoff = Backoff(c.reconnect_min_s, c.reconnect_max_s)
        tls = c.url.startswith("wss://")
        await keep_connected(self._once, backoff, lambda: self.boots, self.target, tls,
                             running=lambda: not self.gateway.stopping)

    def _connect(self) -> connect:
        c, gw = self.gateway.config, self.gateway
        secret = c.secret(self.uuid)
        headers = {}
        if c.username is not None or secret is not None:
            headers = basic_auth(c.username or self.cp_id, secret or "")
        tls = {} if gw.ssl is None else {"ssl": gw.ssl}
        protocols = [gw.wire.version.subprotocol]
        return connect(self.url, subprotocols=protocols,  # type: ignore[arg-type]
                       additional_headers=headers, open_timeout=c.open_timeout_s,
                       proxy=c.proxy, **tls)  # proxy None: direct, not from the environment

    async def _once(self) -> None:
        async with self._connect() as ws:
            await self._session(ws)

    async def _session(self, ws: ClientConnection) -> None:
        cp = EvseChargePoint(self, ws)
        v, c = cp.version, self.gateway.config
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(cp.start())
                interval = await boot(cp, v, c.vendor, c.model)
                self.boots += 1
                if 0 in v.station_statuses:  # 1.6 also reports the charge point itself
                    now = iso(self.gateway.clock.now())
                    call = self.gateway.wire.status_notification(0, "Available", now)
                    await cp.call(call, suppress=False)
                self.connected.set()
                tasks.create_task(every(interval, lambda: self._heartbeat(cp)))
                tasks.create_task(self._sender(cp))
        finally:
            self.connected.clear()

    async def _heartbeat(self, cp: EvseChargePoint) -> None:
        await cp.call(cp.version.call.Heartbeat(), suppress=False)

    async def _sender(self, cp: EvseChargePoint) -> None:
        """The outbox in order, then the current status; sleep until woken."""
        gw, sent_status = self.gateway, None
        while True:
            self.wake.clear()
            message = gw.outbox.head(self.uuid)
            if message is not None:
                await self._deliver(cp, message)
                continue
            status = gw.wire.status_of(gw.tracker.state(self.uuid))
            if status != sent_status:
                call = gw.wire.status_notification(CONNECTOR, status, iso(gw.clock.now()))
                try:
                    await cp.call(call, suppress=False)
                except OCPPError as exc:  # not worth a reconnect: the next change retries
                    LOG.warning("EVSE %s: StatusNotification refused: %s", self.uuid, exc)
                sent_status = status
                continue
            await self.wake.wait()

    async def _deliver(self, cp: EvseChargePoint, m: Message) -> None:
        gw = self.gateway
        payload = dict(m.payload)
        if m.version != gw.config.version:
            return self._drop(m, f"queued for OCPP {m.version}, now {gw.config.version}")
        if m.action in gw.wire.needs_transaction_id:
            tx = None if m.session is None else gw.outbox.transaction_id(m.session)
            if tx is None:
                return self._drop(m, "the backend never answered its session's start")
            payload["transaction_id"] = cp.version.transaction_id_type(tx)
        call = getattr(cp.version.call, m.action)(**payload)
        try:
            result = await cp.call(call, suppress=False, unique_id=m.message_id)
        except OCPPError as exc:  # the backend answered with a CallError
            return await self._refused(m, exc)
        tx = getattr(result, "transaction_id", None) if m.action == "StartTransaction" else None
        gw.outbox.ack(m, None if tx is None else str(tx))
        self._attempts.pop(m.seq, None)
        if tx is not None:  # TxProfiles and Relative profiles can apply now
            gw.apply_profiles(self.uuid)
        _warn_if_refused(self.uuid, m.action, result)

    async def _refused(self, m: Message, exc: OCPPError) -> None:
        n = self._attempts[m.seq] = self._attempts.get(m.seq, 0) + 1
        if n >= MESSAGE_ATTEMPTS:
            self._drop(m, f"CallError {n} times, last: {exc}")
        else:
            await asyncio.sleep(self.gateway.config.reconnect_min_s * n)

    def _drop(self, m: Message, why: str) -> None:
        LOG.error("EVSE %s: dropped %s %s: %s", self.uuid, m.action, m.message_id, why)
        self.gateway.outbox.ack(m)
        self._attempts.pop(m.seq, None)


def _warn_if_refused(evse: str, action: str, result: Any) -> None:
    """The supplier may refuse an id tag; we charge anyway but say so (billing follows up)."""
    info = getattr(result, "id_tag_info", None) or getattr(result, "id_token_info", None)
    if info and info.get("status") not in (None, ACCEPTED):
        LOG.warning("EVSE %s: the backend answered %s with id status %s",
                    evse, action, info.get("status"))
