"""Solve a ``LinearModel`` with OR-Tools (its HiGHS backend by default, or GLOP) in a budget."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.linear_solver.python import model_builder_helper as mbh

from energytree.errors import PlanningError
from optimizer.model import OBJECTIVE_SCALE, LinearModel

__all__ = ["Solution", "solve"]

SOLVERS = ("highs", "glop")
QUIET = {"highs": "output_flag=false", "glop": ""}


@dataclass(frozen=True)
class Solution:
    values: np.ndarray
    objective: float
    activity: np.ndarray  # row activities, to find binding rows


def solve(model: LinearModel, lower: np.ndarray, upper: np.ndarray, time_limit_s: float,
          solver: str = "highs") -> Solution:
    """Solve with the given variable bounds; raise ``PlanningError`` unless optimal."""
    if solver not in SOLVERS:
        raise PlanningError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if time_limit_s <= 0:
        raise PlanningError("no time left in the planning budget")
    if model.matrix.shape[1] == 0:
        return Solution(np.zeros(0), 0.0, np.zeros(model.matrix.shape[0]))
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
    values = np.asarray(engine.variable_values(), dtype=float)
    objective = float(engine.objective_value()) / OBJECTIVE_SCALE
    return Solution(values, objective, model.matrix @ values)
