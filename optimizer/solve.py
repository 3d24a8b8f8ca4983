"""Solve a ``LinearModel`` with HiGHS (or OR-Tools' GLOP) in a budget, again and again.

``Solver`` keeps one HiGHS instance for a model: the minimum-current repair changes column
bounds only, and each re-solve starts from the last basis (``highs.py``). GLOP, or HiGHS where
its library cannot be reached directly, solves cold through OR-Tools' model builder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.linear_solver.python import model_builder_helper as mbh

from energytree.errors import PlanningError
from optimizer.highs import HighsError, WarmHighs, load
from optimizer.model import OBJECTIVE_SCALE, LinearModel

__all__ = ["Solution", "Solver", "solve"]

SOLVERS = ("highs", "glop")
QUIET = {"highs": "output_flag=false", "glop": ""}


@dataclass(frozen=True)
class Solution:
    values: np.ndarray
    objective: float
    activity: np.ndarray  # row activities, to find binding rows


class Solver:
    """Solves of one model with changing variable bounds; raise ``PlanningError`` unless
    optimal. ``warm=False`` solves every time from scratch (as OR-Tools does)."""

    def __init__(self, model: LinearModel, solver: str = "highs", warm: bool = True) -> None:
        if solver not in SOLVERS:
            raise PlanningError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
        self.model, self.solver = model, solver
        api = load() if warm and solver == "highs" else None
        self.highs = WarmHighs(api, model) if api and model.matrix.shape[1] else None

    @property
    def warm(self) -> bool:
        return self.highs is not None

    def solve(self, lower: np.ndarray, upper: np.ndarray, time_limit_s: float) -> Solution:
        model = self.model
        if time_limit_s <= 0:
            raise PlanningError("no time left in the planning budget")
        if model.matrix.shape[1] == 0:
            return Solution(np.zeros(0), 0.0, np.zeros(model.matrix.shape[0]))
        if self.highs is None:
            values, objective = _cold(model, lower, upper, time_limit_s, self.solver)
        else:
            try:
                values, objective = self.highs.solve(lower, upper, time_limit_s)
            except HighsError as exc:
                raise PlanningError(str(exc)) from exc
        return Solution(values, objective / OBJECTIVE_SCALE, model.matrix @ values)


def solve(model: LinearModel, lower: np.ndarray, upper: np.ndarray, time_limit_s: float,
          solver: str = "highs") -> Solution:
    """One solve from scratch: the model handed to the solver, then solved."""
    return Solver(model, solver).solve(lower, upper, time_limit_s)


def _cold(model: LinearModel, lower: np.ndarray, upper: np.ndarray, time_limit_s: float,
          solver: str) -> tuple[np.ndarray, float]:
    builder = mbh.ModelBuilderHelper()
    builder.fill_model_from_sparse_data(
        lower, upper, model.cost, model.row_lower, model.row_upper, model.matrix
    )
    engine = mbh.ModelSolverHelper(solver)
    engine.enable_output(False)
    if QUIET[solver]:  # HiGHS prints a banner on stdout otherwise, which would corrupt JSON
        engine.set_solver_specific_parameters(QUIET[solver])
    engine.set_time_limit_in_seconds(time_limit_s)
    engine.solve(builder)
    status = engine.status()
    if status != mbh.SolveStatus.OPTIMAL:
        raise PlanningError(f"the {solver} solver ended with {status.name}")
    return np.asarray(engine.variable_values(), dtype=float), float(engine.objective_value())
