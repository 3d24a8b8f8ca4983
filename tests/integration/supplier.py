"""A supplier backend (the ``ocpp`` library), an HTTP CONNECT proxy and helpers, on 127.0.0.1.

Used by ``test_ocpp_gateway``: the backend records every call with its message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Callable
from typing import Any

from ocpp.charge_point import ChargePoint
from ocpp.routing import on
from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from adapters.ocpp.versions import BY_SUBPROTOCOL, OcppVersion
from energytree.manager import EnergyManager
from energytree.types import LimitsRes

GUARD_S = 10  # a hang guard, not a timing assertion
TX_ACTIONS = {"Authorize", "StartTransaction", "MeterValues", "StopTransaction",
              "TransactionEvent"}


class BackendSession(ChargePoint):
    """The supplier's side of one EVSE connection; records every call it receives."""

    def __init__(self, backend: Backend, ws: ServerConnection, version: OcppVersion) -> None:
        super().__init__(ws.request.path.rsplit("/", 1)[-1], ws)  # type: ignore[union-attr]
        self._call, self._call_result = version.call, version.call_result
        self._ocpp_version = version.name
        self.backend, self.version, self.ws = backend, version, ws
        self.booted = asyncio.Event()

    async def route_message(self, raw_msg: str) -> None:
        msg = json.loads(raw_msg)
        if msg[0] == 2:  # a Call: (charge point, message id, action, payload)
            self.backend.calls.append((self.id, msg[1], msg[2], msg[3]))
        await super().route_message(raw_msg)

    @on(Action.boot_notification)
    async def on_boot_notification(self, **payload: Any) -> Any:
        return self.version.call_result.BootNotification(
            current_time="2026-11-23T10:00:00Z", interval=300, status="Accepted")

    @on(Action.heartbeat)
    async def on_heartbeat(self, **payload: Any) -> Any:
        return self.version.call_result.Heartbeat(current_time="2026-11-23T10:00:00Z")

    @on(Action.status_notification)
    async def on_status_notification(self, **payload: Any) -> Any:
        self.booted.set()  # statuses follow the boot
        return self.version.call_result.StatusNotification()

    @on(Action.authorize)
    async def on_authorize(self, **payload: Any) -> Any:
        key = "id_tag_info" if self.version.name == "1.6" else "id_token_info"
        return self.version.call_result.Authorize(**{key: {"status": "Accepted"}})

    @on(Action16.start_transaction)
    async def on_start_transaction(self, **payload: Any) -> Any:
        self.backend.next_tx += 1
        return self.version.call_result.StartTransaction(
            transaction_id=self.backend.next_tx, id_tag_info={"status": "Accepted"})

    @on(Action16.stop_transaction)
    async def on_stop_transaction(self, **payload: Any) -> Any:
        return self.version.call_result.StopTransaction()

    @on(Action.meter_values)
    async def on_meter_values(self, **payload: Any) -> Any:
        return self.version.call_result.MeterValues()

    @on(Action.transaction_event)
    async def on_transaction_event(self, **payload: Any) -> Any:
        return self.version.call_result.TransactionEvent()

    async def send(self, payload: Any) -> Any:
        return await self.call(payload, suppress=False)


class Backend:
    """Serves both subprotocols, optionally over TLS; keeps its state across restarts."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.calls: list[tuple[str, str, str, dict[str, Any]]] = []
        self.sessions: dict[str, BackendSession] = {}
        self.peers: list[tuple[str, int]] = []
        self.auth: dict[str, str | None] = {}  # Authorization header per charge point id
        self.next_tx = 100
        self.server: Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await serve(self._handle, "127.0.0.1", self.port, ssl=self.tls,
                                  subprotocols=["ocpp1.6", "ocpp2.0.1"])  # type: ignore[list-item]
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.subprotocol is not None
        session = BackendSession(self, ws, BY_SUBPROTOCOL[ws.subprotocol])
        self.sessions[session.id] = session
        self.auth[session.id] = ws.request.headers.get("Authorization")  # type: ignore[union-attr]
        self.peers.append(ws.remote_address[:2])
        with contextlib.suppress(ConnectionClosed):
            await session.start()

    async def session(self, cp_id: str) -> BackendSession:
        await until(lambda: cp_id in self.sessions and self.sessions[cp_id].booted.is_set())
        return self.sessions[cp_id]

    def tx_calls(self, cp_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [(mid, a, p) for cp, mid, a, p in self.calls if cp == cp_id and a in TX_ACTIONS]


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(GUARD_S):
        while not condition():
            await asyncio.sleep(0.01)


class ConnectProxy:
    """A minimal HTTP CONNECT proxy on 127.0.0.1; ``refuse`` answers 403 instead."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.targets: list[str] = []
        self.outbound: list[tuple[str, int]] = []  # our end of each upstream connection
        self.server: asyncio.Server | None = None
        self.port = 0
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method, target, _ = (await reader.readline()).decode().split(" ", 2)
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass  # headers
        self.targets.append(f"{method} {target}")
        if self.refuse or method != "CONNECT":
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        host, port = target.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        self.outbound.append(up_writer.get_extra_info("sockname")[:2])
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            dst.close()


async def stop_manager(manager: EnergyManager) -> None:
    """``manager.stop()``, cancelling its plan loop again if a cancel got lost.

    Python 3.11's ``asyncio.wait_for`` (used in ``EnergyManager.replan``) swallows a cancel
    that arrives just as the plan finishes; the plan loop then waits forever and ``stop()``
    with it. Reported to the manager's owner; until then the tests must not hang on it.
    """
    stopping = asyncio.create_task(manager.stop())
    while not (await asyncio.wait([stopping], timeout=1.0))[0]:
        for task in asyncio.all_tasks():
            if task.get_name() == "energytree-plan":
                task.cancel()
    await stopping


class FixedLimit:
    """A limit receiver that always allows 16 A."""

    def limits(self) -> LimitsRes:
        return LimitsRes(ac_max_current_A=16.0)
