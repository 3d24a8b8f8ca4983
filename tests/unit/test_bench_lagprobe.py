"""The lag probe's figures: a stall counts as the process's own only if it worked through it."""

from __future__ import annotations

import math

from bench.lagprobe import figures, steal_pct


def test_stalls_are_split_into_own_work_and_waits_for_a_core() -> None:
    lags = [0.001] * 97 + [0.06, 0.2, 0.04]
    cpus = [0.001] * 97 + [0.058, 0.003, 0.04]  # worked, waited, below the bound
    row = figures(lags, cpus, [0.004, 0.088])
    assert row["stalls"] == 2
    assert row["own_stalls"] == 1
    assert row["max_ms"] == 200.0
    assert round(row["busiest_ms"]) == 58
    assert round(row["p50_ms"]) == 1
    assert row["full_gcs"] == 2
    assert round(row["full_gc_max_ms"]) == 88


def test_steal_is_the_stolen_share_of_the_ticks_in_between() -> None:
    assert steal_pct((10, 1000), (60, 1200)) == 25.0
    assert math.isnan(steal_pct(None, (60, 1200)))
    assert math.isnan(steal_pct((10, 1000), (10, 1000)))
