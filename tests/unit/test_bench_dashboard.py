"""The dashboard benchmark (``bench/dashboard.py``) on a small site: every figure is there.

Only the figures' presence and sizes are checked, never the timings (they depend on the
machine).
"""

from __future__ import annotations

import math

import bench.dashboard as bench


async def test_row_has_every_figure() -> None:
    row = await bench.run(10)
    assert set(row) == {"N", "status_ms", "snapshot_ms", "ratio", "frame_ms", "frame_kB",
                        "chart_ms", "chart_kB", "metrics_ms"}
    assert all(math.isfinite(v) and v > 0 for v in row.values())
