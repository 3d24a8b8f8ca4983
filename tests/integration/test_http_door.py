"""The HTTP door on real sockets: oversized requests refused cheaply, connections bounded,
client errors logged as one counted line, never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from adapters.http import HttpApi, HttpApiConfig, build_app, door
from energytree.app.runtime import Service
from energytree.app.service import ServiceConfig
from energytree.formula import MappingEnvironment
from energytree.logs import RateLimitedLog
from energytree.variables import VariableStore
from tests.integration.test_startup import HOME, free_port

USER, PASSWORD = "admin", "door-test"


@pytest.fixture(autouse=True)
def fresh_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts a new rate-limit window."""
    monkeypatch.setattr(door, "CLIENT_ERRORS", RateLimitedLog(door.log))


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[HttpApi]:
    store = VariableStore(tmp_path / "variables.json")
    store.load()
    config = HttpApiConfig(port=0, username=USER, password=PASSWORD)
    async with HttpApi(config, store, lambda: MappingEnvironment({})) as api:
        yield api


async def raw(port: int, request: bytes) -> bytes:
    """Send ``request`` as is; everything the server answers before it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 60)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_a_huge_body_is_refused_through_serve_without_being_read(tmp_path: Path) -> None:
    port = free_port()
    config = ServiceConfig.model_validate(
        {**HOME, "http_api": {"port": port, "username": USER, "password": PASSWORD}})
    service = Service(config, tmp_path / "state")
    try:
        await service.start()
        answer = await raw(port, b"POST /cnf?cmd=set_cm_vars HTTP/1.1\r\nHost: x\r\n"
                                 b"Content-Length: 1000000000\r\n\r\n")  # and no body at all
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert b"larger than 65536 bytes" in answer
        headers = {f"X-Filler-{k}": "x" * 1000 for k in range(10)}
        async with httpx.AsyncClient(auth=(USER, PASSWORD)) as client:
            response = await client.get(f"http://127.0.0.1:{port}/cnf",
                                        params={"cmd": "get_cm_vars"}, headers=headers)
            assert response.status_code == 431
            ok = await client.get(f"http://127.0.0.1:{port}/cnf", params={"cmd": "get_cm_vars"})
            assert ok.status_code == 200
    finally:
        await service.stop()


async def test_malformed_requests_are_one_counted_line_without_tracebacks(
        api: HttpApi, caplog: pytest.LogCaptureFixture) -> None:
    assert api.port is not None
    caplog.set_level(logging.DEBUG)
    for _ in range(20):
        answer = await raw(api.port, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n")
        assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request")
    async with httpx.AsyncClient() as client:
        for _ in range(20):
            response = await client.get(f"http://127.0.0.1:{api.port}/cnf",
                                        params={"cmd": "get_cm_vars"})
            assert response.status_code == 401
    assert not [r for r in caplog.records if r.exc_info]
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2
    assert lines[0].startswith("malformed requests: 127.0.0.1: LineTooLong (repeats are counted")
    assert lines[1].startswith("failed logins: 127.0.0.1 GET /cnf")


async def test_the_count_follows_in_the_next_window() -> None:
    now = [0.0]
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("test.ratelimit")
    logger.addHandler(Collect())
    limited = RateLimitedLog(logger, window_s=60, clock=lambda: now[0])
    for k in range(100):
        now[0] = k * 1.0  # one a second for 100 s
        limited.note("failed logins", f"client {k}")
    assert records == [
        "failed logins: client 0 (repeats are counted, one line per 60 s)",
        "60 more failed logins in the last 60 s (latest: client 60)",
    ]


async def test_connections_beyond_the_bound_are_closed_at_once(api: HttpApi) -> None:
    assert api.port is not None
    held = [await asyncio.open_connection("127.0.0.1", api.port)
            for _ in range(door.MAX_CONNECTIONS)]
    try:
        async with httpx.AsyncClient(auth=(USER, PASSWORD)) as client:
            with pytest.raises(httpx.TransportError):
                await client.get(f"http://127.0.0.1:{api.port}/cnf",
                                 params={"cmd": "get_cm_vars"})
    finally:
        for _, writer in held:
            writer.close()
    async with httpx.AsyncClient(auth=(USER, PASSWORD)) as client:  # room again once closed
        for _ in range(100):
            try:
                response = await client.get(f"http://127.0.0.1:{api.port}/cnf",
                                            params={"cmd": "get_cm_vars"})
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        assert response.status_code == 200


async def test_connections_beyond_the_accept_rate_are_closed(tmp_path: Path) -> None:
    store = VariableStore(tmp_path / "variables.json")
    app = build_app(store, lambda: MappingEnvironment({}), credentials=None)
    listener = await door.serve_app(app, "127.0.0.1", 0, None, max_connections=4,
                                    max_accepts_per_s=0.001)  # a burst of 4, then ~nothing
    try:
        async with httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0)) as client:
            url = f"http://127.0.0.1:{listener.port}/cnf"
            for _ in range(4):
                response = await client.get(url, params={"cmd": "get_cm_vars"})
                assert response.status_code == 200
            with pytest.raises(httpx.TransportError):
                await client.get(url, params={"cmd": "get_cm_vars"})
    finally:
        await listener.stop()


async def test_connections_get_a_small_receive_buffer(api: HttpApi) -> None:
    """A client pushing a body nobody reads is held back by TCP, not read in 256 KiB turns."""
    assert api.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    try:
        writer.write(b"GET /cnf?cmd=get_cm_vars HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 401 ")
        handlers = api._listeners[0].runner.server
        assert handlers is not None and handlers.connections
        for handler in handlers.connections:
            assert handler.transport is not None
            sock = handler.transport.get_extra_info("socket")
            size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            assert size <= 2 * door.RECEIVE_BUFFER_BYTES
    finally:
        writer.close()
