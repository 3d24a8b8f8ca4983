"""Live-loop benchmark: ``python -m bench.live [N]``.

1. Tick time of the manager for an N-EVSE tree (default 1000) with a plan in place, and, in
   the same run, the time of the allocator call inside it (ratio = tick ÷ allocator).
2. Latency from a grid-operator command over the HTTP API (``set_cm_vars`` AVAIL, a real
   HTTP client on 127.0.0.1) to the new EnforcedLimits published for every EVSE: p50 / p99.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.instance import make_request
from energytree.allocator import allocate_slot
from energytree.app.service import ServiceConfig
from energytree.manager import EnergyManager
from optimizer import optimise

ROUNDS = 200
COMMANDS = 60


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def tick_times(n: int) -> dict[str, float]:
    request = make_request(n, with_targets=True)
    now = datetime.now(UTC)
    manager = EnergyManager(request, planner=lambda p, rotation=0: optimise(p, rotation=rotation))
    await manager.replan()
    manager.tick()
    problem = manager._problem  # the same problem the tick uses
    assert problem is not None
    ticks, allocs = [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        manager.tick()
        ticks.append(time.perf_counter() - started)
        started = time.perf_counter()
        allocate_slot(problem, problem.grid.index_at(now))
        allocs.append(time.perf_counter() - started)
    tick_ms, alloc_ms = 1000 * statistics.median(ticks), 1000 * statistics.median(allocs)
    return {"N": n, "tick_median_ms": tick_ms, "tick_p99_ms": 1000 * _percentile(ticks, 0.99),
            "allocator_median_ms": alloc_ms, "ratio": tick_ms / alloc_ms}


def _site(n: int) -> ServiceConfig:
    evses = [{"evse": f"e{i:04d}", "max_current_A": 16, "state": "Charging"} for i in range(n)]
    subs = [{"fuse": f"sub{j:03d}", "max_current_A": 200, "children": evses[j * 10:(j + 1) * 10]}
            for j in range((n + 9) // 10)]
    return ServiceConfig.model_validate({
        "grid": {"uuid": "grid", "max_current_A": 16 * n,
                 "max_power_W": f"{16 * 690 * n} * CM.AVAIL / 100", "children": subs},
        "fourteen_a": {"controllable_devices": 1},
        "http_api": {"host": "127.0.0.1", "port": 0, "password": "bench"},
        "status_interval_s": 3600,
    })


async def command_latency(n: int) -> dict[str, float]:
    from adapters.http import HttpApi
    from energytree.app.runtime import Service

    with tempfile.TemporaryDirectory() as state:
        config = _site(n)
        service = Service(config.model_copy(update={"http_api": None}), Path(state))
        service.variables.set_many([("AVAIL", 100)])
        await service.start()
        assert config.http_api is not None
        api = HttpApi(config.http_api, service.variables, service.environment)
        port = await api.start()
        published: asyncio.Queue[float] = asyncio.Queue()
        service.manager.add_listener(
            lambda limits: published.put_nowait(sum(x.limits_root_side.total_power_W or 0
                                                    for x in limits)))
        latencies = []
        async with httpx.AsyncClient(auth=("admin", "bench")) as client:
            for i in range(COMMANDS):
                avail = 40 if i % 2 == 0 else 60
                target_w = 16 * 690 * n * avail / 100
                while not published.empty():
                    published.get_nowait()
                started = time.perf_counter()
                reply = await client.get(f"http://127.0.0.1:{port}/cnf",
                                         params={"cmd": "set_cm_vars", "name": "AVAIL",
                                                 "val": str(avail)})
                reply.raise_for_status()
                while await published.get() > target_w + 1:
                    pass
                latencies.append(time.perf_counter() - started)
        await api.stop()
        await service.stop()
    return {"N": n, "commands": COMMANDS, "p50_ms": 1000 * _percentile(latencies, 0.5),
            "p99_ms": 1000 * _percentile(latencies, 0.99), "max_ms": 1000 * max(latencies)}


def _row(values: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in values.items())


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 1000
    print("tick:   ", _row(asyncio.run(tick_times(n))), flush=True)
    print("command:", _row(asyncio.run(command_latency(n))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
