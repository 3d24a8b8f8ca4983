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

from energytree.allocator import SlotAllocation, allocate_slot
from energytree.errors import PlanningError
from energytree.plan import AFTER_LEAVE, BATTERY_FULL, TARGET_MET, Plan, instant_plan
from energytree.problem import Problem
from optimizer.model import EPS, LinearModel, build_model
from optimizer.rounding import delivered_kwh, repair
from optimizer.solve import Solution, solve

__all__ = ["PlanReport", "optimise", "optimise_with_report"]

log = logging.getLogger(__name__)
WAITING_FOR_PRICE = "price: cheaper slots planned"
MINIMUM_CURRENT = "minimum current"  # followed by what leaves no room for it
OTHER_SLOTS = "target: planned in other slots"


@dataclass(frozen=True)
class PlanReport:
    """Figures of one optimisation, for logs and benchmarks."""

    lp_bound: float
    objective: float
    fractional_cells: int
    build_s: float
    solve_s: float
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
    first = solve(model, model.lower, model.upper, budget - (built - started), solver)

    def solve_within(lower: np.ndarray, upper: np.ndarray) -> Solution:
        return solve(model, lower, upper, budget - (time.perf_counter() - started), solver)

    repaired = repair(problem, model, first, solve_within,
                      lambda: budget - (time.perf_counter() - started))
    final, fractional = repaired.solution, repaired.fractional
    solved = time.perf_counter()
    report = PlanReport(first.objective, final.objective, fractional, built - started,
                        solved - built, 1 + repaired.rounds,
                        delivered_kwh(problem, model, first.values))
    plan = _assemble(problem, model, final, repaired.switched_off, rotation)
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


def _cell_reasons(problem: Problem, model: LinearModel, x: np.ndarray, activity: np.ndarray,
                  switched_off: np.ndarray) -> list[str]:
    """Why each cell got what it got: a tight node, the EVSE's own cap, the minimum current,
    its target, or prices (only where they are known and differ)."""
    cells = model.cells
    amps = x[:cells]
    node_rows = np.array([label[0] in ("A", "W", "generation") for label in model.row_label],
                         dtype=bool)  # (an empty list would give a float array)
    tight = node_rows & (activity >= model.row_upper - 1e-6)
    coo = model.matrix[np.nonzero(tight)[0]].tocoo()
    on_cell = coo.col < cells
    binding_row = np.full(cells, -1)
    binding_row[coo.col[on_cell]] = np.nonzero(tight)[0][coo.row[on_cell]]
    room_row = _row_without_room_for_minimum(model, activity, node_rows)
    labels: dict[tuple[int, int], str] = {}
    reached = _reached_before(problem, model, amps)
    priced = _prices_differ(problem, model)
    reasons = []
    for cell in range(cells):
        row, t = int(binding_row[cell]), int(model.slot[cell])
        no_room = row < 0 and amps[cell] <= EPS and room_row[cell] >= 0
        if no_room:  # the node has room, but less than this EVSE's minimum current
            row = int(room_row[cell])
        if amps[cell] > EPS and amps[cell] >= model.upper_a[cell] - 1e-6:
            reasons.append("own")
        elif row >= 0:
            if (row, t) not in labels:
                labels[row, t] = _row_reason(problem, model, row, t)
            reasons.append(f"{MINIMUM_CURRENT}: {labels[row, t]}" if no_room
                           else labels[row, t])
        elif reached[cell]:
            reasons.append(TARGET_MET)
        elif priced[model.evse[cell]]:
            reasons.append(WAITING_FOR_PRICE)
        elif switched_off[cell]:
            reasons.append(f"{MINIMUM_CURRENT}: {OTHER_SLOTS}")
        else:
            reasons.append(OTHER_SLOTS)
    return reasons


def _row_without_room_for_minimum(model: LinearModel, activity: np.ndarray,
                                  node_rows: np.ndarray) -> np.ndarray:
    """Per cell, a node row whose room left is below the cell's minimum current (or -1)."""
    coo = model.matrix[:, : model.cells].tocoo()
    keep = node_rows[coo.row] & (coo.data > 0)
    rows, cols, coef = coo.row[keep], coo.col[keep], coo.data[keep]
    room_a = (model.row_upper[rows] - activity[rows]) / coef
    short = room_a < model.min_a[cols] - 1e-6
    found = np.full(model.cells, -1)
    found[cols[short]] = rows[short]
    return found


def _prices_differ(problem: Problem, model: LinearModel) -> np.ndarray:
    """Per EVSE: are prices known in all its cells, and not all the same?"""
    price = problem.price_import[model.slot]
    known = np.ones(problem.evse_count, dtype=bool)
    np.logical_and.at(known, model.evse, ~np.isnan(price))
    low = np.full(problem.evse_count, np.inf)
    high = np.full(problem.evse_count, -np.inf)
    np.minimum.at(low, model.evse, np.nan_to_num(price, nan=np.inf))
    np.maximum.at(high, model.evse, np.nan_to_num(price, nan=-np.inf))
    return known & (high - low > 1e-9)


def _reached_before(problem: Problem, model: LinearModel, amps: np.ndarray) -> np.ndarray:
    """Per cell: was the EVSE's target already delivered before this cell's slot?"""
    order = np.lexsort((model.slot, model.evse))
    energy = (model.kwh_per_a * amps)[order]
    evse = model.evse[order]
    cumulative = np.cumsum(energy)
    first = np.r_[True, evse[1:] != evse[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(evse)), 0))
    before = cumulative - energy - np.r_[0.0, cumulative][start]
    need = np.array([problem.targets[e].energy_kwh or np.inf for e in evse])  # type: ignore[union-attr]
    reached = np.empty(len(order), dtype=bool)
    reached[order] = before >= need - 1e-6
    return reached


def _row_reason(problem: Problem, model: LinearModel, row: int, t: int) -> str:
    kind, k, phase, _cap = model.row_label[row]
    if kind == "generation":
        return "full autonomy: local generation"
    limits = problem.limits(problem.inner[k])
    if kind == "W":
        return f"{limits.power_source[t]}: total_power_W"
    return f"{limits.current_source[t, phase]}: ac_max_current_A L{phase + 1}"


def _targets_met(problem: Problem, model: LinearModel, x: np.ndarray, activity: np.ndarray
                 ) -> np.ndarray:
    met = np.zeros(problem.evse_count, dtype=bool)
    for row, label in enumerate(model.row_label):
        if label[0] == "energy":
            e = model.targeted[label[1]]
            delivered = activity[row] - _shortfall_in_row(model, x, row)
            met[e] = delivered >= label[3] - 1e-6
    return met


def _shortfall_in_row(model: LinearModel, x: np.ndarray, row: int) -> float:
    start, end = model.matrix.indptr[row], model.matrix.indptr[row + 1]
    cols = model.matrix.indices[start:end]
    return float(x[cols[cols >= model.cells]].sum())


def _assemble(problem: Problem, model: LinearModel, solution: Solution,
              switched_off: np.ndarray, rotation: int) -> Plan:
    """Planned EVSEs fixed at the LP values; the others share the rest slot by slot."""
    x, activity = solution.values, solution.activity
    n, t_count = problem.evse_count, problem.slots
    fixed_a = np.full((n, t_count), np.nan)
    # a target the model leaves out needs nothing (0 kWh): it stays off, as in instant_plan
    has_target = [e for e, target in enumerate(problem.targets)
                  if target is not None and problem.wants_power[e]]
    fixed_a[has_target] = 0.0
    fixed_phases = problem.max_phases.astype(np.int64).copy()
    fixed_reason = [[TARGET_MET] * t_count for _ in range(n)]
    met = _targets_met(problem, model, x, activity)
    cell_reason = _cell_reasons(problem, model, x, activity, switched_off)
    amps = np.where(x[: model.cells] > EPS, x[: model.cells], 0.0)
    fixed_a[model.evse, model.slot] = amps
    for e in model.targeted:
        for t in range(t_count):
            fixed_reason[e][t] = TARGET_MET if met[e] else AFTER_LEAVE
    for cell in range(model.cells):
        fixed_reason[model.evse[cell]][model.slot[cell]] = cell_reason[cell]
    current = np.zeros((n, t_count))
    phases = np.zeros((n, t_count), dtype=np.int64)
    power = np.zeros((n, t_count))
    reasons = [["" for _ in range(t_count)] for _ in range(n)]
    room = problem.room_kwh.copy()  # the others stop when their battery is full
    for t in range(t_count):
        watts = np.nan_to_num(fixed_a[:, t]) * fixed_phases[:, t] * problem.voltage_v
        fixed = SlotAllocation(fixed_a[:, t], fixed_phases[:, t], watts,
                               [fixed_reason[e][t] for e in range(n)])
        alloc = allocate_slot(problem, t, rotation=rotation + t, fixed=fixed,
                              evse_cap_a=_room_cap_a(problem, t, room),
                              evse_cap_label=BATTERY_FULL)
        current[:, t] = alloc.current_a
        phases[:, t] = np.where(np.abs(alloc.current_a) > EPS, alloc.phases, fixed_phases[:, t])
        power[:, t] = alloc.current_a * phases[:, t] * problem.voltage_v
        room -= power[:, t].clip(min=0) * problem.grid.hours[t] * problem.efficiency[:, t] / 1000
        for e in range(n):
            reason = alloc.reasons[e]
            reasons[e][t] = _own_label(problem, e, t) if reason == "own" else reason
    return Plan(problem, current, phases, power, reasons, method="optimiser")


def _room_cap_a(problem: Problem, t: int, room_kwh: np.ndarray) -> np.ndarray:
    """Per EVSE the current that fills its battery in slot ``t`` (the last bit may take the
    minimum current for part of the slot); infinite where no battery is known."""
    kwh_per_a = (problem.voltage_v * problem.max_phases[:, t] * problem.grid.hours[t]
                 * problem.efficiency[:, t] / 1000.0)
    cap = np.maximum(room_kwh / np.maximum(kwh_per_a, 1e-12), problem.min_current_a[:, t])
    return np.where(room_kwh <= 1e-9, 0.0, cap)


def _own_label(problem: Problem, e: int, t: int) -> str:
    lim = problem.limits(problem.tree.evses[e])
    amps = lim.current_a[t].min()
    if lim.power_w[t] / (problem.voltage_v * max(int(problem.max_phases[e, t]), 1)) < amps:
        return f"{lim.power_source[t]}: total_power_W"
    return f"{lim.current_source[t, int(lim.current_a[t].argmin())]}: ac_max_current_A"

