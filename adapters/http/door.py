"""Every HTTP listener's door: floods are answered cheaply and never reach the control loop.

A scanner or a broken client can send thousands of requests a second. What it sends is
refused before any handler, parser buffer or log line grows with it:

- at most ``MAX_CONNECTIONS`` connections per listener and ``MAX_ACCEPTS_PER_S`` new ones a
  second (a burst of ``MAX_CONNECTIONS``); more are closed at once, before a byte is read, so
  the event loop spends on a flood a bounded share of its time;
- a body larger than the application's limit (``Content-Length``) is refused with 413 without
  reading it, and a connection whose request was refused is closed, not drained;
- each connection's kernel receive buffer is small (``RECEIVE_BUFFER_BYTES``): a client that
  pushes a megabyte nobody will read is held back by TCP, and one turn of the event loop
  reads at most twice that per connection (with the default, up to 256 KiB a read, a refused
  1 MB body cost 1.3 ms of CPU instead of 0.8, and a flood of them long loop turns);
- more than ``MAX_HEADER_BYTES`` of request line and headers → 431 (a single line beyond
  ``PARSER_LINE_BYTES`` is cut off by the parser itself: 400);
- failed logins, refused and malformed requests are logged through a ``RateLimitedLog``:
  one line with a count per minute, never a traceback for a client's mistake.

Usage (any aiohttp application, e.g. the /cnf API or a dashboard)::

    app = web.Application(middlewares=[door_middleware(64 * 1024), ...])
    listener = await serve_app(app, "127.0.0.1", 8080, tls=None)
    ...
    await listener.stop()
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from energytree.logs import RateLimitedLog

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_HEADER_BYTES",
    "PARSER_LINE_BYTES",
    "Listener",
    "door_middleware",
    "serve_app",
]

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64  # per listener: operators, gateways and a dashboard need a handful
MAX_ACCEPTS_PER_S = 100.0  # new connections per listener and second, on average
MAX_HEADER_BYTES = 8192  # request line and headers together → 431 beyond
PARSER_LINE_BYTES = 16384  # one line beyond this is refused by aiohttp's parser (400)
MAX_HEADER_COUNT = 64
RECEIVE_BUFFER_BYTES = 16384  # per connection (the kernel doubles it): see the module
HANDLER_ARGS = {
    "max_line_size": PARSER_LINE_BYTES,
    "max_field_size": PARSER_LINE_BYTES,
    "max_headers": MAX_HEADER_COUNT,
    "lingering_time": 0.0,  # an unread body is not drained for seconds after the answer
}
CLIENT_ERRORS = RateLimitedLog(log)


def door_middleware(max_body_bytes: int) -> Callable:
    """Refuse oversized requests before any other middleware; log client errors sparingly."""

    @web.middleware
    async def door(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
        refusal = _refusal(request, max_body_bytes)
        if refusal is not None:
            CLIENT_ERRORS.note("refused requests", f"{refusal.status} {_who(request)}")
            refusal.force_close()
            return refusal
        response = await handler(request)
        if response.status == 401:
            CLIENT_ERRORS.note("failed logins", _who(request))
        elif 400 <= response.status < 500:
            CLIENT_ERRORS.note("bad requests", f"{response.status} {_who(request)}")
        if response.status >= 400 and not request.content.at_eof():
            response.force_close()  # do not read the rest of a body we will not use
        return response

    return door


def _refusal(request: web.Request, max_body_bytes: int) -> web.Response | None:
    length = request.content_length
    if length is not None and length > max_body_bytes:
        return _error(413, f"the body is larger than {max_body_bytes} bytes")
    header_bytes = len(request.raw_path) + sum(
        len(name) + len(value) + 4 for name, value in request.raw_headers)
    if header_bytes > MAX_HEADER_BYTES:
        return _error(431, f"request line and headers exceed {MAX_HEADER_BYTES} bytes")
    return None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _who(request: web.Request) -> str:
    path = request.raw_path[:80]
    return f"{request.remote} {request.method} {path}"


class _ClientErrorFilter(logging.Filter):
    """aiohttp logs every malformed request with a traceback; count them instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError | ConnectionError):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            CLIENT_ERRORS.note("malformed requests", f"{remote}: {exc.__class__.__name__}")
            return False
        return True


_FILTER = _ClientErrorFilter()


class _Refused(asyncio.Protocol):
    """A connection beyond the bound: closed at once, before a byte is read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        CLIENT_ERRORS.note("connections refused (too many, or too fast)",
                           str(peer and peer[0]))
        transport.close()


@dataclass
class Listener:
    """One listening socket in front of an application's runner."""

    runner: web.AppRunner
    server: asyncio.Server
    port: int

    async def stop(self) -> None:
        self.server.close()
        await self.runner.cleanup()  # closes the open connections
        await self.server.wait_closed()


class _AcceptBudget:
    """A token bucket: ``rate`` new connections a second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate, self.burst, self._clock = rate, float(burst), clock
        self._tokens, self._at = float(burst), clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


async def serve_app(app: web.Application, host: str, port: int, tls: ssl.SSLContext | None,
                    max_connections: int = MAX_CONNECTIONS,
                    max_accepts_per_s: float = MAX_ACCEPTS_PER_S) -> Listener:
    """Listen on ``host:port`` (0: a free port) behind the door's connection bounds."""
    logging.getLogger("aiohttp.server").addFilter(_FILTER)  # a filter is added only once
    runner = web.AppRunner(app, shutdown_timeout=5.0, access_log=None, **HANDLER_ARGS)
    await runner.setup()
    handlers = runner.server
    assert handlers is not None
    loop = asyncio.get_running_loop()
    budget = _AcceptBudget(max_accepts_per_s, max_connections, loop.time)

    def protocol() -> asyncio.Protocol:
        if len(handlers.connections) >= max_connections or not budget.take():
            return _Refused()
        return handlers()

    try:
        server = await loop.create_server(
            protocol, host, port, ssl=tls, backlog=max_connections)
    except BaseException:
        await runner.cleanup()
        raise
    for sock in server.sockets:  # accepted connections inherit it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
    return Listener(runner, server, int(server.sockets[0].getsockname()[1]))
