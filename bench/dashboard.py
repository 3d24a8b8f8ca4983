"""Dashboard benchmark: ``python -m bench.dashboard [N ...]`` prints one row per size.

What one refresh of the live feed costs on the event loop for an N-EVSE site with a plan in
place, against the manager's own ``status()`` in the same run (the baseline it cannot avoid):
the live snapshot, its JSON frame, the plan's chart data (built once per plan) and a
``/metrics`` scrape.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from zoneinfo import ZoneInfo

from adapters.web.metrics import SiteMetrics
from adapters.web.plandata import plan_chart
from adapters.web.snapshot import SiteFeed, live_snapshot
from bench.instance import make_request
from energytree.manager import EnergyManager
from optimizer import optimise

ROUNDS = 30


def _median_ms(action: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


async def run(n: int) -> dict[str, float]:
    manager = EnergyManager(make_request(n, with_targets=True),
                            planner=lambda p, rotation=0: optimise(p, rotation=rotation))
    await manager.replan()
    manager.tick()
    plan = manager.plan
    assert plan is not None
    feed = SiteFeed("bench", ZoneInfo("Europe/Berlin"), manager, list, dict)
    metrics = SiteMetrics()
    metrics.watch(lambda: live_snapshot(feed))
    status_ms = _median_ms(manager.status)
    snapshot_ms = _median_ms(lambda: live_snapshot(feed))
    frame = json.dumps(live_snapshot(feed), allow_nan=False)
    chart = json.dumps(plan_chart(plan), allow_nan=False)
    return {
        "N": n, "status_ms": status_ms, "snapshot_ms": snapshot_ms,
        "ratio": snapshot_ms / status_ms,
        "frame_ms": _median_ms(lambda: json.dumps(live_snapshot(feed), allow_nan=False)),
        "frame_kB": len(frame) / 1000,
        "chart_ms": _median_ms(lambda: plan_chart(plan)), "chart_kB": len(chart) / 1000,
        "metrics_ms": _median_ms(metrics.exposition),
    }


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [100, 1000]
    print(f"{'N':>5} {'status':>8} {'snapshot':>9} {'ratio':>6} {'frame':>7} {'frame':>8} "
          f"{'chart':>7} {'chart':>8} {'metrics':>8}")
    print(f"{'':>5} {'ms':>8} {'ms':>9} {'':>6} {'ms':>7} {'kB':>8} {'ms':>7} {'kB':>8} "
          f"{'ms':>8}")
    for n in sizes:
        r = asyncio.run(run(n))
        print(f"{n:>5} {r['status_ms']:8.2f} {r['snapshot_ms']:9.2f} {r['ratio']:6.1f} "
              f"{r['frame_ms']:7.2f} {r['frame_kB']:8.1f} {r['chart_ms']:7.2f} "
              f"{r['chart_kB']:8.1f} {r['metrics_ms']:8.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
