"""Planning benchmark: ``python -m bench [N ...]`` prints one row per size.

For each N it plans the synthetic day of ``bench/instance.py`` end to end (request → problem →
optimised plan) and reports, from the same run: the time, the plan's cost (energy at the
import price plus 10 EUR per unmet kWh), the LP bound of the same instance, the gap, cells
below the minimum current in the dispatched slot and in the whole plan, the time of a bare LP
solve of the same model with HiGHS' defaults (``bench/baseline.py``; as a ratio: end to end ÷
bare LP), and the saving against charging at once (the instant allocator, which charges
every car at full power from arrival).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from bench.baseline import bare_solve
from bench.instance import DAY_START, make_request
from energytree.plan import Plan, instant_plan
from energytree.problem import PlanOptions, Problem, build_problem
from optimizer import optimise
from optimizer.model import LinearModel, build_model

UNMET_PENALTY = 10.0  # EUR per kWh short at leave time, as in the LP benchmark notes


def plan_cost(plan: Plan) -> float:
    return plan.cost() + UNMET_PENALTY * float(plan.shortfall_kwh().sum())


def min_current_violations(plan: Plan, slots: slice) -> int:
    amps = np.abs(plan.current_a[:, slots])
    minimum = plan.problem.min_current_a[:, slots]
    return int(((amps > 1e-6) & (amps < minimum - 1e-6)).sum())


def run(n: int) -> dict[str, float]:
    request = make_request(n)
    options = PlanOptions()
    started = time.perf_counter()
    problem = build_problem(request, DAY_START, options)
    plan = optimise(problem, time_budget_s=30.0)
    total_s = time.perf_counter() - started

    model = build_model(problem)
    bound, bare_s = bare_solve(model, 30.0)
    lp_cost = _lp_cost(problem, model, bound)

    at_once = instant_plan(problem)
    cost, baseline = plan_cost(plan), plan_cost(at_once)
    return {
        "N": n,
        "plan_s": total_s,
        "bare_lp_s": bare_s,
        "ratio": total_s / bare_s,
        "cost_eur": cost,
        "lp_bound_eur": lp_cost,
        "gap_pct": 100 * (cost - lp_cost) / lp_cost,
        "viol_now": min_current_violations(plan, slice(0, 1)),
        "viol_all": min_current_violations(plan, slice(None)),
        "unmet_kwh": float(plan.shortfall_kwh().sum()),
        "at_once_eur": baseline,
        "saving_pct": 100 * (baseline - cost) / baseline,
        "method": plan.method,
    }


def _lp_cost(problem: Problem, model: LinearModel, x: np.ndarray) -> float:
    """The LP optimum priced like ``plan_cost`` (energy cost + 10 EUR per unmet kWh)."""
    amps = x[: model.cells]
    grid_kwh = model.phases * problem.voltage_v * problem.grid.hours[model.slot] / 1000 * amps
    energy_cost = float((grid_kwh * np.nan_to_num(problem.price_import[model.slot])).sum())
    delivered = np.bincount(model.evse, weights=model.kwh_per_a * amps,
                            minlength=problem.evse_count)
    need = np.array([t.energy_kwh or 0.0 if t else 0.0 for t in problem.targets])
    return energy_cost + UNMET_PENALTY * float(np.maximum(0.0, need - delivered).sum())


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [10, 100, 1000]
    header = ("N", "plan_s", "bare_lp_s", "ratio", "cost_eur", "lp_bound_eur", "gap_pct",
              "viol_now", "viol_all", "unmet_kwh", "at_once_eur", "saving_pct", "method")
    print(" ".join(f"{h:>12}" for h in header))
    for n in sizes:
        row = run(n)
        cells = [f"{row[h]:>12.4f}" if isinstance(row[h], float) else f"{row[h]!s:>12}"
                 for h in header]
        print(" ".join(cells), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
