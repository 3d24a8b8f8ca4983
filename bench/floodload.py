"""The flood's load process (``bench.flood`` starts it): garbage at a fixed rate, on 127.0.0.1.

``python -m bench.floodload PORT RATE CONNECT_RATE SECONDS CONNECTIONS [CPU]`` pins itself to
``CPU``, waits for a line on stdin, sends, and prints what happened as JSON. It imports
nothing of the service, so it starts fast and light.

Two streams, both paced on a schedule fixed in advance, so a slow server makes them late
(``took_s`` grows) rather than lighter:

- ``rate`` requests a second that an attacker without the password can keep sending on open
  connections (wrong password, no credentials, unknown paths, wrong methods: 401 each, the
  connection stays open), pipelined over ``connections`` keep-alive connections. These reach
  the parser, the door and the authentication middleware;
- ``connect_rate`` new connections a second, each with one request the server answers and
  then closes (1 MB body → 413, 20 KB request line → 400, 12 KB of headers → 431, random
  bytes → 400). The door takes ``MAX_ACCEPTS_PER_S`` of them and closes the rest unread.

Every request ends in one tally: its HTTP status, ``refused`` (the connection was closed
before any answer: the door's connection bounds), ``lost`` (closed after earlier answers on
the same connection) or ``timeout``. The request bytes are built once; the streams are raw
asyncio transports, so one process on one core sends well over 1000 requests a second.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import random
import sys
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"  # the load never leaves this machine
MAX_IN_FLIGHT = 64  # pipelined requests per keep-alive connection before the sender waits
MAX_CONNECTING = 200  # new-connection requests open at once
REPLY_TIMEOUT_S = 5.0
MAX_RATE, MAX_CONNECT_RATE, MAX_SECONDS = 5000, 1000, 300  # the load is bounded
BODY = b"x" * (1 << 20)
WRONG = b"Authorization: Basic YWRtaW46d3Jvbmc=\r\n"  # admin:wrong


def keep_alive_requests(port: int) -> list[bytes]:
    """Garbage the server answers with 401 and keeps the connection open for."""
    host = f"Host: {HOST}:{port}\r\n".encode()
    return [
        b"GET /cnf?cmd=get_cm_vars HTTP/1.1\r\n" + host + WRONG + b"\r\n",
        b"GET /cnf?cmd=set_cm_vars&name=x&val=1 HTTP/1.1\r\n" + host + b"\r\n",
        b"GET /wp-login.php HTTP/1.1\r\n" + host + WRONG + b"\r\n",
        b"DELETE /cnf HTTP/1.1\r\n" + host + b"User-Agent: scanner/0.1\r\n\r\n",
        b"GET /cnf?cmd=get_cm_vars HTTP/1.1\r\n" + host
        + b"Authorization: Basic !!not-base64!!\r\n\r\n",
    ]


def closing_requests(port: int) -> list[bytes]:
    """Garbage the server answers and then closes the connection for."""
    host = f"Host: {HOST}:{port}\r\n".encode()
    return [
        b"POST /cnf?cmd=set_cm_vars HTTP/1.1\r\n" + host
        + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY,
        b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n" + host + b"\r\n",
        b"GET /cnf HTTP/1.1\r\n" + host + b"X-Pad: " + b"p" * 12_000 + b"\r\n\r\n",
        random.Random(18).randbytes(512) + b"\r\n\r\n",
    ]


@dataclass
class Tally:
    """How every request ended, and the keep-alive connections opened."""

    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    connections: int = 0

    def add(self, outcome: str, count: int = 1) -> None:
        if count:
            self.answers[outcome] += count


class _Answers(asyncio.Protocol):
    """Counts pipelined HTTP answers on one connection (status line, headers, a sized body)."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.buffer = bytearray()
        self.answered = 0
        self.in_flight = 0
        self.room = asyncio.Event()
        self.closed = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            mark = head.find(b"content-length:")
            size = int(head[mark + 15:].split(b"\r\n", 1)[0]) if mark >= 0 else 0
            if len(self.buffer) < end + 4 + size:
                return
            status = head.split(b" ", 2)[1].decode("ascii", "replace")
            del self.buffer[:end + 4 + size]
            self.tally.add(status)
            self.answered += 1
            self.in_flight -= 1
            self.room.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.tally.add("refused" if self.answered == 0 else "lost", self.in_flight)
        self.in_flight = 0
        self.room.set()
        if not self.closed.done():
            self.closed.set_result(None)


async def _keep_alive(index: int, stream: _Stream, requests: list[bytes], tally: Tally) -> None:
    """One keep-alive connection: its share of ``stream``, pipelined, reconnecting if closed."""
    loop = asyncio.get_running_loop()
    due = list(range(index, stream.total, stream.connections))
    k = 0
    while k < len(due):
        await stream.wait_until(due[k])
        try:
            _, answers = await loop.create_connection(lambda: _Answers(tally), HOST, stream.port)
        except OSError:
            tally.add("refused")
            k += 1
            continue
        tally.connections += 1
        assert answers.transport is not None
        while k < len(due) and not answers.closed.done():
            await stream.wait_until(due[k])
            while answers.in_flight >= MAX_IN_FLIGHT and not answers.closed.done():
                answers.room.clear()
                await answers.room.wait()
            if answers.closed.done():
                break
            ready = stream.due_by(loop.time())
            while k < len(due) and due[k] < ready and answers.in_flight < MAX_IN_FLIGHT:
                answers.transport.write(requests[due[k] % len(requests)])
                answers.in_flight += 1
                k += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                while answers.in_flight and not answers.closed.done():
                    answers.room.clear()
                    await answers.room.wait()
        tally.add("timeout", answers.in_flight)
        answers.in_flight = 0
        answers.transport.close()


async def _one_connection(port: int, request: bytes, tally: Tally) -> None:
    """A new connection, one request, the status line of the answer (or how it failed)."""
    try:
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                writer.write(request)  # sent in the background: the answer may come first,
                line = await reader.readline()  # then a reset for the unread rest of the body
            finally:
                writer.close()
        outcome = line.split(b" ")[1].decode() if line.count(b" ") >= 2 else "refused"
    except TimeoutError:
        outcome = "timeout"
    except OSError:
        outcome = "refused"
    tally.add(outcome)


@dataclass
class _Stream:
    """``total`` requests at ``rate`` a second from ``start`` (loop time)."""

    port: int
    rate: float
    total: int
    start: float
    connections: int = 1

    def due_by(self, now: float) -> int:
        """How many requests of the schedule are due at ``now``."""
        return min(self.total, int((now - self.start) * self.rate) + 1)

    async def wait_until(self, k: int) -> None:
        delay = self.start + k / self.rate - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)


async def _connecting(stream: _Stream, requests: list[bytes], tally: Tally) -> None:
    """One new connection per request; the kinds drawn at random (seeded), as a strict
    rotation would meet the door's token bucket in step and let only some kinds through."""
    slots = asyncio.Semaphore(MAX_CONNECTING)
    tasks: set[asyncio.Task[None]] = set()
    draw = random.Random(18)
    for k in range(stream.total):
        await stream.wait_until(k)
        await slots.acquire()
        request = requests[draw.randrange(len(requests))]
        task = asyncio.create_task(_one_connection(stream.port, request, tally))
        task.add_done_callback(lambda _t: slots.release())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)


async def load(port: int, rate: float, connect_rate: float, seconds: float,
               connections: int) -> dict[str, Any]:
    """Both streams for ``seconds``; what happened to each request, and how long it took."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1
    kept = _Stream(port, rate, int(rate * seconds), start, connections)
    new = _Stream(port, connect_rate, int(connect_rate * seconds), start)
    kept_tally, new_tally = Tally(), Tally()
    senders = [_keep_alive(i, kept, keep_alive_requests(port), kept_tally)
               for i in range(connections)]
    await asyncio.gather(*senders, _connecting(new, closing_requests(port), new_tally))
    took = loop.time() - start
    return {"took_s": took,
            "keep_alive": {"sent": kept.total, "answers": dict(kept_tally.answers),
                           "connections": kept_tally.connections},
            "new_connections": {"sent": new.total, "answers": dict(new_tally.answers)}}


def main(argv: list[str]) -> None:
    port, connections = int(argv[0]), int(argv[4])
    rate, connect_rate, seconds = (float(a) for a in argv[1:4])
    if not (0 < rate <= MAX_RATE and 0 <= connect_rate <= MAX_CONNECT_RATE
            and 1 <= connections <= 64 and 0 < seconds <= MAX_SECONDS):
        sys.exit(f"bounded: rate up to {MAX_RATE}/s, connect rate up to {MAX_CONNECT_RATE}/s, "
                 f"1 to 64 connections, up to {MAX_SECONDS} s")
    if len(argv) > 5:
        os.sched_setaffinity(0, {int(argv[5])})
    sys.stdin.readline()  # the go from the bench, after its quiet phase
    report = asyncio.run(load(port, rate, connect_rate, seconds, connections))
    sys.stdout.write(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
