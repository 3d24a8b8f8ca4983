"""Minimum current in every slot: decide which cells are on before the second solve.

The LP may give a car 2.4 A where the car needs 6 A or nothing. Per slot, cells the LP already
runs at or above the minimum stay on; the fractional ones are switched on greedily, largest
first, while the minimum currents of everything that is on still fit every node on their path
(per phase and in power); the rest are switched off. The second solve then keeps on-cells at
or above their minimum and off-cells at 0, so the whole plan is all-or-nothing.
"""

from __future__ import annotations

import numpy as np

from energytree.limits import PHASES
from energytree.problem import Problem, phase_usage
from energytree.tree import subtree_sums
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
    for t in np.unique(model.slot[fractional]):
        in_slot = np.nonzero(model.slot == t)[0]
        load_a, load_w = _min_load(problem, model, in_slot[on[in_slot]], t)
        candidates = in_slot[fractional[in_slot]]
        for cell in candidates[np.argsort(-amps[candidates], kind="stable")]:
            add_a, add_w, path = _cell_load(problem, model, cell)
            t_caps_a = problem.node_cap_a[0][path, t]
            t_caps_w = problem.node_cap_w[0][path, t]
            if np.all(load_a[path] + add_a <= t_caps_a + EPS) and np.all(
                load_w[path] + add_w <= t_caps_w + EPS
            ):
                load_a[path] += add_a
                load_w[path] += add_w
                on[cell] = True
    lower[:cells] = np.where(on, model.min_a, 0.0)
    upper[:cells] = np.where(on, model.upper_a, 0.0)
    return lower, upper, int(fractional.sum())


def _cell_load(problem: Problem, model: LinearModel, cell: int
               ) -> tuple[np.ndarray, float, np.ndarray]:
    e = model.evse[cell]
    usage = np.zeros(PHASES)
    usage[problem.phase_map[e, : model.phases[cell]]] = 1.0
    minimum = model.min_a[cell]
    watts = minimum * model.phases[cell] * problem.voltage_v
    return minimum * usage, watts, problem.inner_paths[e]


def _min_load(problem: Problem, model: LinearModel, on_cells: np.ndarray, t: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Load of the on-cells at their minimum current, per inner node (and phase)."""
    amps = np.zeros(problem.evse_count)
    phases = np.ones(problem.evse_count, dtype=np.int64)
    amps[model.evse[on_cells]] = model.min_a[on_cells]
    phases[model.evse[on_cells]] = model.phases[on_cells]
    usage = phase_usage(problem.phase_map, phases)
    lo, hi = problem.inner_lo, problem.inner_hi
    load_a = subtree_sums(amps[:, None] * usage, lo, hi)
    load_w = subtree_sums(amps * phases * problem.voltage_v, lo, hi)
    return load_a, load_w
