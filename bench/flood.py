"""Flood benchmark: ``python -m bench.flood [--rate R] [--connect-rate C] [--seconds S]``.

Runs the real service (``Service``: simulated home, grid meter polled over Modbus on
127.0.0.1, the HTTP API) and, from a separate process (``bench.floodload``), sends it
garbage for ``--seconds``: ``--rate`` requests a second pipelined on keep-alive connections
(wrong password, no credentials, unknown paths: what reaches the parser and the middlewares)
and ``--connect-rate`` new connections a second with a request each that the server answers
and closes (1 MB body, over-long request line, oversized headers, random bytes). Everything
stays on 127.0.0.1 and stops after rate × seconds requests (both bounded).

On a machine with two or more cores the service is pinned to one core and the load process
to another (``--no-pin`` shares them), so the figures show the service's own work rather
than the load generator taking its core.

Printed, for a quiet phase (the baseline, same run) and the flood: the manager's tick time
p50 / p99 / max, the event-loop lag (how late a 10 ms timer fires: what a meter poll or the
next tick waits for) p99 / max with the stalls beyond 50 ms and how many were the service's
own (``bench.lagprobe``), full garbage collections, failed meter polls, RSS growth and CPU use
of the service process, the hypervisor's steal, and what happened to every request: its HTTP
status, ``refused`` (closed by the door before an answer), ``lost`` or ``timeout``. The rates
reached are printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.floodload import HOST
from bench.lagprobe import LagProbe, cpu_ticks, figures, steal_pct
from energytree.app.runtime import Service
from energytree.app.service import ServiceConfig
from energytree.heap import freeze_startup_heap, thaw_heap

KEEP_ALIVE_CONNECTIONS = 16


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
        self.failed_polls = 0
        self.lag = LagProbe()
        self.lag.start()
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

    def take(self) -> Phase:
        taken = Phase(self.ticks, figures(*self.lag.take()), self.failed_polls)
        self.ticks, self.failed_polls = [], 0
        return taken


@dataclass
class Phase:
    """The figures of one phase (quiet or flood)."""

    ticks: list[float]
    lag: dict[str, float]
    failed_polls: int
    rss_mb: float = 0.0
    cpu: float = 0.0
    steal: float = float("nan")


HEADER = ("ticks", "tick p50 ms", "tick p99 ms", "tick max ms", "lag p99 ms", "lag max ms",
          "stalls >50 ms (own)", "busiest ms", "full GCs (max ms)", "failed polls", "RSS +MB",
          "CPU %", "steal %")


def _row(name: str, phase: Phase) -> str:
    ordered = sorted(phase.ticks) or [float("nan")]
    tick = (statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))], ordered[-1])
    lag = phase.lag
    cells = [str(len(phase.ticks)), *(f"{1000 * t:.2f}" for t in tick), f"{lag['p99_ms']:.2f}",
             f"{lag['max_ms']:.2f}", f"{lag['stalls']} ({lag['own_stalls']})",
             f"{lag['busiest_ms']:.1f}", f"{lag['full_gcs']} ({lag['full_gc_max_ms']:.0f})",
             str(phase.failed_polls), f"{phase.rss_mb:+.1f}",
             f"{100 * phase.cpu:.0f}", f"{phase.steal:.0f}"]
    return f"{name:<6} " + " ".join(f"{c:>{len(h)}}" for c, h in zip(cells, HEADER, strict=True))


def _cpus(pin: bool) -> tuple[int, int] | None:
    """A core for the service and another for the load, or None (shared)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return (cores[0], cores[1]) if pin and len(cores) >= 2 else None


async def _spawn_load(port: int, args: argparse.Namespace,
                      load_cpu: int | None) -> asyncio.subprocess.Process:
    """The load process, started before the quiet phase (forking a service-sized process
    blocks the loop for a while): it waits for a line on stdin before it sends anything."""
    command = [sys.executable, "-m", "bench.floodload", str(port), str(args.rate),
               str(args.connect_rate), str(args.seconds), str(args.connections)]
    if load_cpu is not None:
        command.append(str(load_cpu))
    return await asyncio.create_subprocess_exec(*command, stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE)


async def _flood(process: asyncio.subprocess.Process) -> dict[str, Any]:
    out, _ = await process.communicate(b"go\n")
    return dict(json.loads(out))


def _rates(report: dict[str, Any]) -> list[str]:
    took = report["took_s"]
    lines = []
    for name in ("keep_alive", "new_connections"):
        part = report[name]
        answers = part["answers"]
        answered = sum(n for k, n in answers.items() if k.isdigit())
        lines.append(f"{name}: {part['sent']} sent in {took:.1f} s ({part['sent'] / took:.0f}/s),"
                     f" {answered} answered ({answered / took:.0f}/s), refused "
                     f"{answers.get('refused', 0)}, lost {answers.get('lost', 0)}, timeout "
                     f"{answers.get('timeout', 0)}; answers {dict(sorted(answers.items()))}")
    return lines


async def run(args: argparse.Namespace, load_cpu: int | None) -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(sys.stderr):
        service = Service(_site(port), Path(folder), simulate=True)
        await service.start()
        if args.freeze:
            freeze_startup_heap()  # as ``energytree serve`` does
        try:
            process = await _spawn_load(port, args, load_cpu)
            probe = Probe(service)
            cpu, wall, ticks = time.process_time(), time.perf_counter(), cpu_ticks()
            await asyncio.sleep(args.quiet_s)
            quiet = probe.take()
            quiet.cpu = (time.process_time() - cpu) / (time.perf_counter() - wall)
            quiet.steal = steal_pct(ticks, cpu_ticks())
            rss_before = _rss_mb()
            cpu, wall, ticks = time.process_time(), time.perf_counter(), cpu_ticks()
            report = await _flood(process)
            flood = probe.take()
            flood.cpu = (time.process_time() - cpu) / (time.perf_counter() - wall)
            flood.steal = steal_pct(ticks, cpu_ticks())
            flood.rss_mb = _rss_mb() - rss_before
            await probe.lag.stop()
        finally:
            await service.stop()
            thaw_heap()
    print("\n".join(_rates(report)))
    print(f"{'phase':<6} " + " ".join(HEADER))
    print(_row("quiet", quiet))
    print(_row("flood", flood))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.flood")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="requests per second on keep-alive connections")
    parser.add_argument("--connect-rate", type=float, default=200.0,
                        help="new connections per second, one request each")
    parser.add_argument("--connections", type=int, default=KEEP_ALIVE_CONNECTIONS,
                        help="keep-alive connections")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the flood lasts")
    parser.add_argument("--quiet-s", type=float, default=10.0, help="baseline phase")
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="let the service and the load share all cores")
    parser.add_argument("--no-freeze", dest="freeze", action="store_false",
                        help="leave the start-up heap to the garbage collector")
    args = parser.parse_args(argv)
    if not (0 < args.rate <= 5000 and 0 <= args.connect_rate <= 1000
            and 1 <= args.connections <= 64 and 0 < args.seconds <= 300):
        parser.error("bounded: --rate up to 5000/s, --connect-rate up to 1000/s, "
                     "--connections 1 to 64, --seconds up to 300")
    cpus = _cpus(args.pin)
    if cpus is not None:
        os.sched_setaffinity(0, {cpus[0]})  # before the service starts its threads
    asyncio.run(run(args, None if cpus is None else cpus[1]))


if __name__ == "__main__":
    main()
