"""``optimise``: the whole planning pipeline, which always returns a safe plan.

1. Solve the LP for the EVSEs with a target (``model.py``); its optimum is the lower bound.
2. Decide per slot which cells are on, so minimum currents hold (``rounding.py``).
3. Solve again with those on/off bounds: a plan that is all-or-nothing in every slot.
4. Share what is left in each slot among the EVSEs without a target, as soon as possible and
   max-min fairly (the instant allocator, with the planned EVSEs fixed).

Any failure or a spent time budget falls back to the instant allocator, and the plan's notes
say why.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from energytree.errors import PlanningError
from energytree.plan import Plan, instant_plan
from energytree.problem import Problem
from optimizer.assemble import assemble
from optimizer.model import build_model
from optimizer.rounding import delivered_kwh, repair
from optimizer.solve import Solution, Solver

__all__ = ["PlanReport", "optimise", "optimise_with_report"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanReport:
    """Figures of one optimisation, for logs and benchmarks."""

    lp_bound: float
    objective: float
    fractional_cells: int
    build_s: float
    solve_s: float  # the LP (the model handed to the solver, and solved) and the repair
    lp_s: float  # the LP alone
    solves: int
    lp_kwh: np.ndarray  # energy per EVSE in the LP relaxation [kWh] (0 outside the model)

    @property
    def gap(self) -> float:
        """Relative distance of the plan's objective above the LP bound."""
        return (self.objective - self.lp_bound) / max(abs(self.lp_bound), 1e-9)


def optimise(problem: Problem, *, time_budget_s: float = 2.0, rotation: int = 0,
             solver: str = "highs") -> Plan:
    """Plan ``problem``; never raises for a valid problem (falls back instead)."""
    return optimise_with_report(problem, time_budget_s=time_budget_s, rotation=rotation,
                                solver=solver)[0]


def optimise_with_report(problem: Problem, *, time_budget_s: float = 2.0, rotation: int = 0,
                         solver: str = "highs") -> tuple[Plan, PlanReport | None]:
    """``optimise``, and its figures (None when it fell back to the instant allocator)."""
    started = time.perf_counter()
    try:
        plan, report = _optimise(problem, time_budget_s, rotation, solver, started)
    except Exception as exc:  # never fail: any error falls back to a safe plan
        if isinstance(exc, PlanningError):
            log.warning("optimiser failed (%s); planning with the instant allocator", exc)
        else:
            log.exception("optimiser error; planning with the instant allocator")
        fallback = instant_plan(problem, rotation=rotation)
        return Plan(fallback.problem, fallback.current_a, fallback.phases, fallback.power_w,
                    fallback.reasons, method="instant allocator (fallback)",
                    notes=[*problem.notes, f"optimiser failed: {exc}"]), None
    log.info("plan: objective %.4f, LP bound %.4f (gap %.4f %%), %d fractional cells, %.3f s",
             report.objective, report.lp_bound, 100 * report.gap, report.fractional_cells,
             time.perf_counter() - started)
    return plan, report


def _optimise(problem: Problem, budget: float, rotation: int, solver: str, started: float
              ) -> tuple[Plan, PlanReport]:
    model = build_model(problem)
    built = time.perf_counter()
    lp = Solver(model, solver)  # one HiGHS instance: the repair's solves start warm
    first = lp.solve(model.lower, model.upper, budget - (time.perf_counter() - started))
    lp_solved = time.perf_counter()

    def solve_within(lower: np.ndarray, upper: np.ndarray) -> Solution:
        return lp.solve(lower, upper, budget - (time.perf_counter() - started))

    repaired = repair(problem, model, first, solve_within,
                      lambda: budget - (time.perf_counter() - started))
    final, fractional = repaired.solution, repaired.fractional
    solved = time.perf_counter()
    report = PlanReport(first.objective, final.objective, fractional, built - started,
                        solved - built, lp_solved - built, 1 + repaired.rounds,
                        delivered_kwh(problem, model, first.values))
    plan = assemble(problem, model, final, repaired.switched_off, rotation)
    notes = [
        *problem.notes,
        f"optimiser ({solver}): LP bound {report.lp_bound:.4f}, plan {report.objective:.4f}, "
        f"gap {100 * report.gap:.4f} %, {fractional} fractional cells repaired in "
        f"{report.solves} solves",
        *_shortfall_notes(plan),
    ]
    return Plan(plan.problem, plan.current_a, plan.phases, plan.power_w, plan.reasons,
                method="optimiser", notes=notes), report


def _shortfall_notes(plan: Plan) -> list[str]:
    """One line per target that cannot be met: what is missing at leave time."""
    targets = plan.problem.targets
    notes = []
    for e, short in enumerate(plan.shortfall_kwh()):
        target = targets[e]
        if target is not None and target.energy_kwh and short > 1e-3:
            uuid = plan.problem.tree.evses[e].uuid
            notes.append(f"{uuid}: target not reachable, {short:.2f} of "
                         f"{target.energy_kwh:.2f} kWh short at leave time")
    return notes
