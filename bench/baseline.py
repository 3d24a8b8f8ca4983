"""The baseline of the planning benchmarks: one cold HiGHS solve with HiGHS' own defaults.

The planner sets options of its own (``optimizer.highs.OPTIONS``); the baseline is the same
model handed to a fresh HiGHS through the same C API and solved as HiGHS comes.
"""

from __future__ import annotations

import time

import numpy as np

from optimizer.highs import WarmHighs, load
from optimizer.model import LinearModel

__all__ = ["bare_solve"]


def bare_solve(model: LinearModel, budget_s: float) -> tuple[np.ndarray, float]:
    """The LP's column values, and the seconds the cold solve took (handing over included)."""
    api = load()
    assert api is not None, "the benchmarks need the HiGHS library that OR-Tools ships"
    started = time.perf_counter()
    values, _ = WarmHighs(api, model, options={}).solve(model.lower, model.upper, budget_s)
    return values, time.perf_counter() - started
