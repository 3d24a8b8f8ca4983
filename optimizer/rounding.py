"""Minimum current in every slot: decide which cells are on, round by round.

The LP may give a car 2.4 A where the car needs 6 A or nothing. Each round, cells the last
solve ran at or above the minimum are kept on (at least the minimum from now on); the
fractional ones are switched on greedily, largest first, while the minimum currents of
everything that is on still fit every row of the model (node currents and powers, local
generation, and each target's energy, which must not overfill unless the need left is below
one cell at the minimum anyway), and off otherwise. Cells the solve left at 0 stay open only
for cars that lost a cell or energy: they win it back there in the next solve (the LP put it
where it was cheapest or earliest, not where it was the only room). All other idle cells
close, so the next solve has nothing left to make fractional; a car that loses energy in it
(another car's minimum took its room) gets its closed cells back. Rounds end when a solve is
all-or-nothing and no car lost energy; after ``MAX_ROUNDS`` the open cells close and one last
solve gives a plan that is all-or-nothing everywhere. All coefficients are non-negative and
the on-cells' minimums fit, so every solve is feasible. Only bounds change between solves, so
the solver starts each from the last basis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from energytree.problem import Problem
from optimizer.model import EPS, LinearModel
from optimizer.solve import Solution

__all__ = ["Repair", "delivered_kwh", "repair"]

LOST_KWH = 1e-4  # energy [kWh] a car may lose against the LP before cells are retried
MAX_ROUNDS = 4  # solves after the LP; the last one leaves no cell undecided


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
           solve_within: Callable[[np.ndarray, np.ndarray], Solution],
           time_left: Callable[[], float] = lambda: np.inf) -> Repair:
    """All-or-nothing currents that lose, wherever the model allows, nothing against the LP.

    Only the EVSEs the LP ran below their minimum current are planned again: every other EVSE
    keeps its LP currents (they are all-or-nothing and optimal), so each solve after the first
    is small. A round that might not finish within ``time_left`` becomes the last one.
    """
    cells = model.cells
    columns = model.cell_columns
    lower, upper = model.lower.copy(), model.upper.copy()
    open_ = model.min_a > EPS  # undecided cells; those without a minimum need no decision
    fractional_in_lp = _fractional(model, first.values, open_)
    keep = ~_affected(problem, model, columns, first, fractional_in_lp)[model.evse]
    lower[:cells][keep] = upper[:cells][keep] = np.clip(first.values[:cells][keep],
                                                         model.lower[:cells][keep],
                                                         model.upper[:cells][keep])
    open_ &= ~keep
    no_overshoot = _without_slack(model)
    need = _need_kwh(problem)
    wanted = np.minimum(delivered_kwh(problem, model, first.values), need)
    rounded_off = np.zeros(cells, dtype=bool)
    idle = np.zeros(cells, dtype=bool)  # closed while at 0; reopened if their car loses
    solution, rounds, solve_s = first, 0, 0.0
    while rounds < MAX_ROUNDS:
        amps = solution.values[:cells]
        fractional = _fractional(model, amps, open_)
        lost = wanted - delivered_kwh(problem, model, solution.values) > LOST_KWH
        reopen = idle & lost[model.evse]
        if not fractional.any() and not reopen.any():
            break
        # the last round leaves no cell undecided
        last = rounds + 1 == MAX_ROUNDS or time_left() < 3 * solve_s
        on = open_ & (amps >= model.min_a - EPS)
        lower[:cells][on] = model.min_a[on]
        switched = _switch_on(model, columns, model.row_upper if last else no_overshoot,
                              lower, upper, fractional, amps)
        # a car whose need left is below one cell at its minimum overshoots in any cell
        left = need - delivered_kwh(problem, model, lower)
        small = fractional & ~switched & (left[model.evse] < model.min_a * model.kwh_per_a)
        switched |= _switch_on(model, columns, model.row_upper, lower, upper, small, amps)
        rounded_off |= fractional & ~switched
        upper[:cells][fractional & ~switched] = 0.0
        open_ &= ~(on | fractional)
        if not last:
            upper[:cells][reopen] = model.upper[:cells][reopen]
            open_ |= reopen
            idle &= ~reopen
        # idle cells stay open only where a car lost energy or a cell, to win it back there
        lost[model.evse[rounded_off]] = True
        close = open_ if last else open_ & ~lost[model.evse]
        upper[:cells][close] = 0.0
        open_ &= ~close
        idle |= close
        started = time.perf_counter()
        solution, rounds = solve_within(lower, upper), rounds + 1
        solve_s = max(solve_s, time.perf_counter() - started)
    # cells switched off to spare a car's need may be all that is left to reach it
    lost = wanted - delivered_kwh(problem, model, solution.values) > LOST_KWH
    retry = rounded_off & lost[model.evse]
    if retry.any():
        amps = solution.values[:cells]
        lower[:cells][open_ & (amps > EPS)] = model.min_a[open_ & (amps > EPS)]
        upper[:cells][open_ & (amps <= EPS)] = 0.0  # so that nothing comes out fractional
        _switch_on(model, columns, model.row_upper, lower, upper, retry, first.values[:cells])
        solution, rounds = solve_within(lower, upper), rounds + 1
    switched_off = (first.values[:cells] > EPS) & (solution.values[:cells] <= EPS)
    return Repair(solution, int(fractional_in_lp.sum()), rounds, switched_off)


def _affected(problem: Problem, model: LinearModel, columns: sp.csc_matrix, first: Solution,
              fractional: np.ndarray) -> np.ndarray:
    """Per EVSE: has it fractional cells, or does it share with one of them the smallest full
    node above that cell? (Capacity moves between them; larger full nodes stay as they are.)"""
    affected = np.zeros(problem.evse_count, dtype=bool)
    affected[model.evse[fractional]] = True
    node_rows = np.array([label[0] in ("A", "W", "generation") for label in model.row_label],
                         dtype=bool)
    full = node_rows & (first.activity >= model.row_upper - 1e-6)
    coo = columns[:, np.nonzero(fractional)[0]].tocoo()
    keep = full[coo.row]
    rows, cells = coo.row[keep], coo.col[keep]
    if len(rows):
        size = np.diff(model.matrix.indptr)[rows]
        order = np.lexsort((size, cells))
        first_of_cell = np.r_[True, cells[order][1:] != cells[order][:-1]]
        smallest = np.unique(rows[order][first_of_cell])
        neighbours = model.matrix[smallest][:, : model.cells].tocoo().col
        affected[model.evse[neighbours]] = True
    return affected


def _need_kwh(problem: Problem) -> np.ndarray:
    """Each EVSE's energy target; 0 where it has none (nothing to win back for it)."""
    return np.array([t.energy_kwh if t is not None and t.energy_kwh is not None
                     and t.price_limit is None else 0.0 for t in problem.targets])


def _without_slack(model: LinearModel) -> np.ndarray:
    """Row caps where an energy target may not be passed (its slack for the minimum current)."""
    return np.array([label[3] if label[0] == "energy" else cap
                     for label, cap in zip(model.row_label, model.row_upper, strict=True)])


def _switch_on(model: LinearModel, columns: sp.csc_matrix, row_upper: np.ndarray,
               lower: np.ndarray, upper: np.ndarray, candidates: np.ndarray,
               amps: np.ndarray) -> np.ndarray:
    """Switch ``candidates`` on, largest ``amps`` first, while every on-cell's minimum fits
    ``row_upper``.

    The bounds change in place (switched-on cells run at least at their minimum, up to their
    cap); returns the switched-on cells. The candidates are few and touch a handful of rows
    each, so the greedy pass runs on Python floats (the same arithmetic as numpy's).
    """
    cells = model.cells
    load = (columns @ lower[:cells]).tolist()  # on-cells at their minimum, kept at their value
    cap = row_upper.tolist()
    switched = np.zeros(cells, dtype=bool)
    chosen = np.nonzero(candidates)[0]
    chosen = chosen[np.argsort(-amps[chosen], kind="stable")]  # ties: the lower cell first
    for cell, minimum in zip(chosen.tolist(), model.min_a[chosen].tolist(), strict=True):
        start, end = columns.indptr[cell], columns.indptr[cell + 1]
        switched[cell] = _fits(columns.indices[start:end].tolist(),
                               (columns.data[start:end] * minimum).tolist(), load, cap)
    lower[:cells][switched] = model.min_a[switched]
    upper[:cells][switched] = model.upper_a[switched]
    return switched


def _fractional(model: LinearModel, amps: np.ndarray, open_: np.ndarray) -> np.ndarray:
    amps = amps[: model.cells]
    return open_ & (amps > EPS) & (amps < model.min_a - EPS)


def _fits(rows: list[int], add: list[float], load: list[float], cap: list[float]) -> bool:
    """Add ``add`` to ``load`` in ``rows`` (in place) if every one of these rows still holds."""
    # a row's own tolerance scales with its size (watts are thousands, kWh units)
    if all(load[r] + a <= cap[r] + EPS * (1 + abs(a)) for r, a in zip(rows, add, strict=True)):
        for r, a in zip(rows, add, strict=True):
            load[r] += a
        return True
    return False
