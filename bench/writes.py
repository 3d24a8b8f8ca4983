"""Write-volume and loop-lag benchmark: ``python -m bench.writes [--lag-s S] [--no-bytes]``.

1. Bytes the session log writes per hour of steady charging (every EVSE charging, a meter
   reading per EVSE per second), for 2 and 120 EVSEs, and per EVSE per day. Measured as the
   bytes the writing thread hands to the kernel (``/proc/thread-self/io``: WAL frames,
   checkpoints, file headers). Baseline in the same run: the write path before batching (one
   transaction with fsync per change, on the event loop), over a shorter span scaled to an hour.
   The batched log runs a whole simulated hour on a fake clock.
2. Event-loop lag of the real service (``Service``, simulated 120-EVSE depot: chargers, meter
   over Modbus on 127.0.0.1, session log, status; the start-up heap frozen as ``energytree
   serve`` does) for ``--lag-s`` seconds: how late a 10 ms timer fires, p50, p99 and max,
   the stalls beyond 50 ms and how many of them the process spent working (``bench.lagprobe``:
   the others waited for a core), against the same service with the old write path and,
   with ``--no-freeze-too``, without the frozen heap.

Linux only for the byte counts (``/proc``); elsewhere they print as n/a.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.lagprobe import LagProbe, cpu_ticks, figures, steal_pct
from energytree.app import runtime
from energytree.app.service import ServiceConfig
from energytree.batchwrite import BatchWriter, thread_bytes_written
from energytree.heap import freeze_startup_heap, thaw_heap
from energytree.sessions import Database, MeterReading, SessionLog, SessionTracker, StateChanged
from energytree.types import EvseState

HOUR_S = 3600
INTERVAL_S = 300.0  # the site file's default session_log_interval_s
BASELINE_COMMITS = 3000  # the old path commits per reading: bounded, then scaled to an hour
POWER_W = 11_000.0


class FakeClock:
    """Simulated seconds for the batch writer's interval."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _feed_hour(tracker: SessionTracker, evses: list[str], seconds: int,
               writer: BatchWriter | None = None, clock: FakeClock | None = None) -> None:
    """Plug every EVSE in, then one reading per EVSE per simulated second."""
    start = datetime(2026, 12, 1, 8, tzinfo=UTC)
    for evse in evses:
        tracker.feed(MeterReading(evse, 0.0, 0.0, start))
        tracker.feed(StateChanged(evse, EvseState.Charging, start))
    for second in range(1, seconds + 1):
        if clock is not None and writer is not None:
            clock.now = float(second)
            if second % INTERVAL_S == 0:  # real time would give the worker its turn here
                writer.flush()
        at = start + timedelta(seconds=second)
        for evse in evses:
            tracker.feed(MeterReading(evse, POWER_W * second / 3600, POWER_W, at))


def bytes_per_hour(n: int) -> dict[str, float | None]:
    evses = [f"e{i:03d}" for i in range(n)]
    with tempfile.TemporaryDirectory() as folder:
        db = Database(Path(folder) / "sessions.sqlite")
        clock = FakeClock()
        writer = BatchWriter(db.path, "session log", INTERVAL_S, clock=clock)
        _feed_hour(SessionTracker(SessionLog(db, writer)), evses, HOUR_S, writer, clock)
        writer.flush()
        batched, batches = writer.bytes_written, writer.batches
        writer.close()
        db.close()
    with tempfile.TemporaryDirectory() as folder:
        db = Database(Path(folder) / "sessions.sqlite")
        seconds = max(1, BASELINE_COMMITS // n)
        before = thread_bytes_written()
        _feed_hour(SessionTracker(SessionLog(db)), evses, seconds)
        after = thread_bytes_written()
        db.close()
    baseline = None if before is None or after is None else (after - before) * HOUR_S / seconds
    per_day = None if batched is None else batched * 24 / n
    return {"N": n, "batched_B_per_h": batched, "commits_per_h": batches,
            "per_evse_MB_per_day": None if per_day is None else per_day / 1e6,
            "old_B_per_h": baseline,
            "ratio_old": None if not batched or baseline is None else baseline / batched}


def _depot(n: int) -> ServiceConfig:
    evses = [{"evse": f"e{i:03d}", "max_current_A": 16, "state": "Charging"} for i in range(n)]
    subs = [{"fuse": f"sub{j:02d}", "max_current_A": 160, "children": evses[j * 10:(j + 1) * 10]}
            for j in range((n + 9) // 10)]
    return ServiceConfig.model_validate({
        "name": "depot", "tick_s": 1.0, "status_interval_s": 3600,
        "grid": {"uuid": "grid", "max_current_A": 8 * n, "children": subs},
        "meter": {"register_map": "socomec-countis-e27"},
    })


@contextlib.contextmanager
def _old_write_path() -> Iterator[None]:
    """The baseline: the session log commits every change itself, on the event loop."""
    original = runtime.SessionLog
    runtime.SessionLog = lambda db, writer=None: original(db)  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        runtime.SessionLog = original  # type: ignore[misc]


async def loop_lag(n: int, seconds: float, freeze: bool = True) -> dict[str, float]:
    """How late a 10 ms timer fires while the simulated depot runs [ms] (``freeze``: the
    start-up heap frozen, as ``energytree serve`` does)."""
    with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(sys.stderr):
        service = runtime.Service(_depot(n), Path(folder), simulate=True)
        await service.start()
        if freeze:
            freeze_startup_heap()
        probe = LagProbe()
        ticks = cpu_ticks()
        try:
            probe.start()
            await asyncio.sleep(seconds)
        finally:
            await probe.stop()
            steal = steal_pct(ticks, cpu_ticks())
            await service.stop()
            thaw_heap()
    return {**figures(*probe.take()), "steal_pct": steal}


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _print_bytes() -> None:
    print(f"session log, steady charging, counters every {INTERVAL_S:.0f} s")
    print(f"{'N':>4} {'batched B/h':>12} {'commits/h':>9} {'MB/EVSE/day':>11} "
          f"{'old B/h':>12} {'old/batched':>11}")
    for n in (2, 120):
        row = bytes_per_hour(n)
        print(f"{n:>4} {_fmt(row['batched_B_per_h'], ',.0f'):>12} "
              f"{row['commits_per_h']:>9.0f} {_fmt(row['per_evse_MB_per_day'], '.3f'):>11} "
              f"{_fmt(row['old_B_per_h'], ',.0f'):>12} {_fmt(row['ratio_old'], '.0f'):>11}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.writes")
    parser.add_argument("--lag-s", type=float, default=30.0, help="loop-lag run per variant")
    parser.add_argument("--lag-evses", type=int, default=120)
    parser.add_argument("--bytes", action=argparse.BooleanOptionalAction, default=True,
                        help="the write-volume part (--no-bytes: only the loop lag)")
    parser.add_argument("--no-freeze-too", action="store_true",
                        help="also a run without freezing the start-up heap")
    args = parser.parse_args(argv)
    if args.bytes:
        _print_bytes()
    print(f"\nevent-loop lag, simulated {args.lag_evses}-EVSE depot, {args.lag_s:.0f} s each")
    print(f"{'write path':<24} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'stalls >50 ms (own)':>19} {'busiest ms':>10} {'full GCs (max ms)':>17} "
          f"{'steal %':>7}")
    started = time.perf_counter()
    rows = [("batched", asyncio.run(loop_lag(args.lag_evses, args.lag_s)))]
    if args.no_freeze_too:
        rows.append(("batched, heap not frozen",
                     asyncio.run(loop_lag(args.lag_evses, args.lag_s, freeze=False))))
    with _old_write_path():
        rows.append(("old (loop)", asyncio.run(loop_lag(args.lag_evses, args.lag_s))))
    for name, row in rows:
        stalls = f"{row['stalls']} ({row['own_stalls']})"
        gcs = f"{row['full_gcs']} ({row['full_gc_max_ms']:.0f})"
        print(f"{name:<24} {row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} {row['max_ms']:>7.2f} "
              f"{stalls:>19} {row['busiest_ms']:>10.1f} {gcs:>17} {row['steal_pct']:>7.0f}")
    print(f"(lag runs took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
