"""Minimum current in every slot: decide which cells are on before the second solve.

The LP may give a car 2.4 A where the car needs 6 A or nothing. Cells the LP already runs at
or above the minimum stay on; the fractional ones are switched on greedily, largest first,
while the minimum currents of everything that is on still fit every row of the model (node
currents and powers, local generation, and each target's energy, which must not overfill);
the rest are switched off. All coefficients are non-negative, so the second solve, which keeps
on-cells at or above their minimum and off-cells at 0, is then always feasible and the whole
plan is all-or-nothing.
"""

from __future__ import annotations

import numpy as np

from energytree.problem import Problem
from optimizer.model import EPS, LinearModel

__all__ = ["on_off_bounds"]


def on_off_bounds(problem: Problem, model: LinearModel, x: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Variable bounds for the second solve, and how many fractional cells there were."""
    cells = model.cells
    lower = model.lower.copy()
    upper = model.upper.copy()
    amps = x[:cells]
    on = amps >= model.min_a - EPS
    fractional = (amps > EPS) & ~on
    columns = model.matrix[:, :cells].tocsc()
    # row activity with every on-cell at its minimum: it fits, as the LP's values fit
    load = columns @ np.where(on, model.min_a, 0.0)
    candidates = np.nonzero(fractional)[0]
    for cell in candidates[np.argsort(-amps[candidates], kind="stable")]:
        start, end = columns.indptr[cell], columns.indptr[cell + 1]
        rows = columns.indices[start:end]
        add = columns.data[start:end] * model.min_a[cell]
        # a row's own tolerance scales with its size (watts are thousands, kWh units)
        if np.all(load[rows] + add <= model.row_upper[rows] + EPS * (1 + np.abs(add))):
            load[rows] += add
            on[cell] = True
    lower[:cells] = np.where(on, model.min_a, 0.0)
    upper[:cells] = np.where(on, model.upper_a, 0.0)
    return lower, upper, int(fractional.sum())
