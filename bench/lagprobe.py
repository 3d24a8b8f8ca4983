"""How late a 10 ms timer fires on the event loop, and how much of that the process worked.

A late timer has two causes: the loop was busy (a long callback, a garbage collection: the
service's own work) or the process waited for a core (other programs on a shared machine).
Every sample keeps the lag and the CPU time the process used in the same window
(``time.process_time``: all its threads). A stall of 60 ms with 55 ms of CPU was the
service's own; one with 3 ms of CPU was the machine's. The probe also times the full
(oldest-generation) garbage collections, the longest pauses a Python service makes itself,
and the share of CPU time the hypervisor took from this virtual machine ("steal", Linux):
a VM whose host is busy loses its cores for tens of milliseconds at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import statistics
import time
from dataclasses import dataclass, field

__all__ = ["STALL_S", "LagProbe", "cpu_ticks", "figures", "steal_pct"]

PERIOD_S = 0.01
STALL_S = 0.05  # the bound on an event-loop stall


@dataclass
class LagProbe:
    """Samples the running loop until ``stop``; ``take`` hands over the samples so far."""

    lags: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    full_gcs: list[float] = field(default_factory=list)  # CPU time of each [s]
    _task: asyncio.Task[None] | None = None
    _gc_started: float = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._gc_started = time.process_time()
        else:
            self.full_gcs.append(time.process_time() - self._gc_started)

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked, cpu = loop.time(), time.process_time()
            await asyncio.sleep(PERIOD_S)
            self.lags.append(loop.time() - asked - PERIOD_S)
            self.cpus.append(time.process_time() - cpu)

    def take(self) -> tuple[list[float], list[float], list[float]]:
        taken = self.lags, self.cpus, self.full_gcs
        self.lags, self.cpus, self.full_gcs = [], [], []
        return taken

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def figures(lags: list[float], cpus: list[float],
            full_gcs: list[float] | None = None) -> dict[str, float]:
    """Lag p50 / p99 / max [ms]; stalls beyond ``STALL_S``, and those in which the process
    itself used that much CPU ("own"); the most CPU the process used in one window [ms];
    full collections and the longest one [ms CPU]."""
    ordered = sorted(lags) or [float("nan")]
    pairs = zip(lags, cpus, strict=True)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
        "max_ms": 1000 * ordered[-1],
        "stalls": sum(lag > STALL_S for lag in lags),
        "own_stalls": sum(lag > STALL_S and cpu > STALL_S for lag, cpu in pairs),
        "busiest_ms": 1000 * max(cpus, default=float("nan")),
        "full_gcs": len(full_gcs or []),
        "full_gc_max_ms": 1000 * max(full_gcs or [], default=0.0),
    }


def cpu_ticks() -> tuple[int, int] | None:
    """(stolen, total) CPU ticks of the machine so far, from ``/proc/stat``; None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return fields[7], sum(fields)


def steal_pct(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float:
    """The share of CPU time the hypervisor took between two ``cpu_ticks`` [%]."""
    if before is None or after is None or after[1] <= before[1]:
        return float("nan")
    return 100.0 * (after[0] - before[0]) / (after[1] - before[1])
