"""Flood benchmark: ``python -m bench.flood [--rate R] [--seconds S]``.

Runs the real service (``Service``: simulated home, grid meter polled over Modbus on
127.0.0.1, the HTTP API) and, from a separate process, sends it garbage at ``--rate``
requests per second for ``--seconds``: 1 MB bodies without credentials, over-long request
lines, oversized headers, wrong passwords and random bytes, over at most ``CONCURRENCY``
connections. Everything stays on 127.0.0.1 and stops after rate × seconds requests.

Printed, for a quiet phase (the baseline, same run) and the flood: the manager's tick time
p50 / p99 / max, the event-loop lag (how late a 10 ms timer fires: what a meter poll or the
next tick waits for) p99 / max, failed meter polls, RSS growth of the service process, and
the answers the flood got. The achieved rate is printed too: on a busy machine the load
process may not reach ``--rate``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from energytree.app.runtime import Service
from energytree.app.service import ServiceConfig

HOST = "127.0.0.1"  # the load never leaves this machine
CONCURRENCY = 200
REPLY_TIMEOUT_S = 5.0
BODY = b"x" * (1 << 20)
LAG_PROBE_S = 0.01


def _garbage(kind: int, port: int) -> bytes:
    host = f"Host: {HOST}:{port}\r\n".encode()
    if kind == 0:  # 1 MB body, no credentials
        return (b"POST /cnf?cmd=set_cm_vars HTTP/1.1\r\n" + host
                + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY)
    if kind == 1:  # an over-long request line
        return b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n" + host + b"\r\n"
    if kind == 2:  # 12 KB of headers
        return b"GET /cnf HTTP/1.1\r\n" + host + b"X-Pad: " + b"p" * 12_000 + b"\r\n\r\n"
    if kind == 3:  # a wrong password
        return (b"GET /cnf?cmd=get_cm_vars HTTP/1.1\r\n" + host
                + b"Authorization: Basic YWRtaW46d3Jvbmc=\r\n\r\n")
    return random.randbytes(512) + b"\r\n\r\n"  # not HTTP at all


async def _one(port: int, kind: int, answers: collections.Counter[str]) -> None:
    try:
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(HOST, port)
            try:
                writer.write(_garbage(kind, port))
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
        status = line.split(b" ")[1].decode() if line.count(b" ") >= 2 else "closed"
    except (ConnectionError, TimeoutError, OSError):
        status = "closed"
    answers[status] += 1


async def _load(port: int, rate: float, seconds: float) -> dict[str, Any]:
    """The flood itself (run in its own process): ``rate`` requests per second."""
    answers: collections.Counter[str] = collections.Counter()
    slots = asyncio.Semaphore(CONCURRENCY)
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    start = loop.time()
    total = int(rate * seconds)
    for k in range(total):
        await asyncio.sleep(max(0.0, start + k / rate - loop.time()))
        await slots.acquire()
        task = asyncio.create_task(_one(port, k % 5, answers))
        task.add_done_callback(lambda _t: slots.release())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return {"sent": total, "took_s": loop.time() - start, "answers": dict(answers)}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _site(port: int) -> ServiceConfig:
    return ServiceConfig.model_validate({
        "name": "home", "tick_s": 1.0, "status_interval_s": 3600,
        "grid": {"uuid": "house", "max_current_A": 35,
                 "children": [{"evse": "garage", "max_current_A": 16},
                              {"evse": "carport", "max_current_A": 16}]},
        "meter": {"register_map": "socomec-countis-e27", "poll_interval_s": 1.0,
                  "timeout_s": 2.0},
        "http_api": {"host": HOST, "port": port, "password": "flood-bench"},
    })


class Probe:
    """Tick times, event-loop lag and failed meter polls of a running service, by phase."""

    def __init__(self, service: Service) -> None:
        self.ticks: list[float] = []
        self.lags: list[float] = []
        self.failed_polls = 0
        self._lagging = asyncio.create_task(self._measure_lag())
        tick = service.manager.tick

        def timed_tick() -> Any:
            started = time.perf_counter()
            try:
                return tick()
            finally:
                self.ticks.append(time.perf_counter() - started)

        service.manager.tick = timed_tick  # type: ignore[method-assign]
        meter = service.plugs["meter"].client  # type: ignore[attr-defined]
        poll = meter.poll_once

        async def counted_poll() -> Any:
            reading = await poll()
            self.failed_polls += reading is None
            return reading

        meter.poll_once = counted_poll  # type: ignore[method-assign]

    async def _measure_lag(self) -> None:
        """How late a 10 ms timer fires: what a meter poll or a tick would wait for."""
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            self.lags.append(loop.time() - asked - LAG_PROBE_S)

    def take(self) -> tuple[list[float], list[float], int]:
        taken = self.ticks, self.lags, self.failed_polls
        self.ticks, self.lags, self.failed_polls = [], [], 0
        return taken

    async def stop(self) -> None:
        self._lagging.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._lagging


def _ms(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max [ms]."""
    ordered = sorted(values) or [float("nan")]
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    return 1000 * statistics.median(ordered), 1000 * p99, 1000 * ordered[-1]


def _row(name: str, taken: tuple[list[float], list[float], int], rss_mb: float) -> str:
    ticks, lags, failed = taken
    tick, lag = _ms(ticks), _ms(lags)
    return (f"{name:<6} {len(ticks):>5} {tick[0]:>7.2f} {tick[1]:>7.2f} {tick[2]:>7.2f} "
            f"{lag[1]:>7.2f} {lag[2]:>7.2f} {failed:>7} {rss_mb:>+7.1f}")


async def run(rate: float, seconds: float, quiet_s: float) -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(sys.stderr):
        service = Service(_site(port), Path(folder), simulate=True)
        await service.start()
        try:
            probe = Probe(service)
            await asyncio.sleep(quiet_s)
            quiet = probe.take()
            rss_before = _rss_mb()
            load = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.flood", "--load", str(port), "--rate", str(rate),
                "--seconds", str(seconds), stdout=subprocess.PIPE)
            out, _ = await load.communicate()
            flood = probe.take()
            rss_growth = _rss_mb() - rss_before
            await probe.stop()
        finally:
            await service.stop()
    report = json.loads(out)
    print(f"flood: {report['sent']} requests in {report['took_s']:.1f} s "
          f"({report['sent'] / report['took_s']:.0f}/s), answers {report['answers']}")
    print(f"{'':<6} {'':>5} {'tick':>7} {'tick':>7} {'tick':>7} {'lag':>7} {'lag':>7} "
          f"{'failed':>7} {'RSS':>7}")
    print(f"{'phase':<6} {'ticks':>5} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'p99 ms':>7} "
          f"{'max ms':>7} {'polls':>7} {'+MB':>7}")
    print(_row("quiet", quiet, 0.0))
    print(_row("flood", flood, rss_growth))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.flood")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the flood lasts")
    parser.add_argument("--quiet-s", type=float, default=10.0, help="baseline phase")
    parser.add_argument("--load", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not (0 < args.rate <= 5000 and 0 < args.seconds <= 300):
        parser.error("bounded: --rate up to 5000/s, --seconds up to 300")
    if args.load is not None:
        sys.stdout.write(json.dumps(asyncio.run(_load(args.load, args.rate, args.seconds))))
        return
    asyncio.run(run(args.rate, args.seconds, args.quiet_s))


if __name__ == "__main__":
    main()
