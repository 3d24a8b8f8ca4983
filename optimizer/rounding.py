"""Minimum current in every slot: decide which cells are on, round by round.

The LP may give a car 2.4 A where the car needs 6 A or nothing. Each round, cells the last
solve ran at or above the minimum are kept on (at least the minimum from now on); the
fractional ones are switched on greedily, largest first, while the minimum currents of
everything that is on still fit every row of the model (node currents and powers, local
generation, and each target's energy, which must not overfill), and off otherwise. Cells the
solve left at 0 stay open: energy lost by switching a cell off is won back there in the next
solve (the LP put it where it was cheapest or earliest, not where it was the only room).
Rounds end when a solve is all-or-nothing; after ``MAX_ROUNDS`` the open cells close and one
last solve gives a plan that is all-or-nothing everywhere. All coefficients are non-negative
and the on-cells' minimums fit, so every solve is feasible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from energytree.problem import Problem
from optimizer.model import EPS, LinearModel
from optimizer.solve import Solution

__all__ = ["Repair", "delivered_kwh", "repair"]

MAX_ROUNDS = 6  # solves that may leave cells open; one more closes them


@dataclass(frozen=True)
class Repair:
    """The all-or-nothing solution and how it came about."""

    solution: Solution
    fractional: int  # cells the LP ran below their minimum current
    rounds: int  # solves after the LP (0: the LP was all-or-nothing already)
    switched_off: np.ndarray  # per cell: on in the LP, off in the plan


def delivered_kwh(problem: Problem, model: LinearModel, x: np.ndarray) -> np.ndarray:
    """Energy into each car [kWh] (EVSEs outside the model get 0)."""
    return np.bincount(model.evse, weights=model.kwh_per_a * x[: model.cells],
                       minlength=problem.evse_count)


def repair(problem: Problem, model: LinearModel, first: Solution,
           solve_within: Callable[[np.ndarray, np.ndarray], Solution]) -> Repair:
    """All-or-nothing currents that lose, wherever the model allows, nothing against the LP."""
    cells = model.cells
    columns = model.matrix[:, :cells].tocsc()
    lower, upper = model.lower.copy(), model.upper.copy()
    open_ = model.min_a > EPS  # undecided cells; those without a minimum need no decision
    solution, rounds = first, 0
    fractional_in_lp = _fractional(model, first.values, open_)
    while True:
        amps = solution.values[:cells]
        fractional = _fractional(model, amps, open_)
        if not fractional.any() and (rounds < MAX_ROUNDS or not open_.any()):
            break
        on = open_ & (amps >= model.min_a - EPS)
        # the last round closes every open cell the solve left at 0
        off = open_ & ~on & ~fractional if rounds >= MAX_ROUNDS else np.zeros(cells, bool)
        _decide(model, columns, lower, upper, amps, on, fractional)
        upper[:cells][off] = 0.0
        open_ &= ~(on | fractional | off)
        solution, rounds = solve_within(lower, upper), rounds + 1
    switched_off = (first.values[:cells] > EPS) & (solution.values[:cells] <= EPS)
    return Repair(solution, int(fractional_in_lp.sum()), rounds, switched_off)


def _fractional(model: LinearModel, amps: np.ndarray, open_: np.ndarray) -> np.ndarray:
    amps = amps[: model.cells]
    return open_ & (amps > EPS) & (amps < model.min_a - EPS)


def _decide(model: LinearModel, columns: sp.csc_matrix, lower: np.ndarray, upper: np.ndarray,
            amps: np.ndarray, on: np.ndarray, fractional: np.ndarray) -> None:
    """Keep ``on`` cells on; switch ``fractional`` ones on, largest first, while minimums fit.

    The bounds change in place: on-cells run at least at their minimum, the others at 0.
    """
    cells = model.cells
    on = on | (lower[:cells] > EPS)
    load = columns @ np.where(on, model.min_a, 0.0)
    candidates = np.nonzero(fractional)[0]
    switched_on = np.zeros(cells, dtype=bool)
    for cell in candidates[np.argsort(-amps[candidates], kind="stable")]:
        switched_on[cell] = _fits(columns, load, model.row_upper, cell, model.min_a[cell])
    lower[:cells] = np.where(on | switched_on, model.min_a, lower[:cells])
    upper[:cells] = np.where(fractional & ~switched_on, 0.0, upper[:cells])


def _fits(columns: sp.csc_matrix, load: np.ndarray, row_upper: np.ndarray, cell: int,
          amps: float) -> bool:
    """Add ``cell`` at ``amps`` to ``load`` (in place) if every row it touches still holds."""
    start, end = columns.indptr[cell], columns.indptr[cell + 1]
    rows = columns.indices[start:end]
    add = columns.data[start:end] * amps
    # a row's own tolerance scales with its size (watts are thousands, kWh units)
    if np.all(load[rows] + add <= row_upper[rows] + EPS * (1 + np.abs(add))):
        load[rows] += add
        return True
    return False
