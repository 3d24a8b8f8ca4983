"""How late a 10 ms timer fires on the event loop, and how much of that the process worked.

A late timer has two causes: the loop was busy (a long callback, a garbage collection: the
service's own work) or the process waited for a core (other programs on a shared machine).
Every sample keeps the lag and the CPU time the process used in the same window
(``time.process_time``: all its threads). A stall of 60 ms with 55 ms of CPU was the
service's own; one with 3 ms of CPU was the machine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from dataclasses import dataclass, field

__all__ = ["STALL_S", "LagProbe", "figures"]

PERIOD_S = 0.01
STALL_S = 0.05  # the bound on an event-loop stall


@dataclass
class LagProbe:
    """Samples the running loop until ``stop``; ``take`` hands over the samples so far."""

    lags: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked, cpu = loop.time(), time.process_time()
            await asyncio.sleep(PERIOD_S)
            self.lags.append(loop.time() - asked - PERIOD_S)
            self.cpus.append(time.process_time() - cpu)

    def take(self) -> tuple[list[float], list[float]]:
        taken = self.lags, self.cpus
        self.lags, self.cpus = [], []
        return taken

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def figures(lags: list[float], cpus: list[float]) -> dict[str, float]:
    """Lag p50 / p99 / max [ms]; stalls beyond ``STALL_S``, and those in which the process
    itself used that much CPU ("own"); the most CPU the process used in one window [ms]."""
    ordered = sorted(lags) or [float("nan")]
    pairs = zip(lags, cpus, strict=True)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[int(0.99 * (len(ordered) - 1))],
        "max_ms": 1000 * ordered[-1],
        "stalls": sum(lag > STALL_S for lag in lags),
        "own_stalls": sum(lag > STALL_S and cpu > STALL_S for lag, cpu in pairs),
        "busiest_ms": 1000 * max(cpus, default=float("nan")),
    }
