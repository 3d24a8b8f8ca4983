"""From the solved model to a ``Plan``: every cell's current and why, and the EVSEs without a
target sharing what is left, slot by slot.

Everything per cell is computed on arrays (a large site has 100 000 cells); the instant
allocator runs only in slots where some EVSE is not planned by the model, because in the
others it has nothing to share and would only hand back the planned values.
"""

from __future__ import annotations

import numpy as np

from energytree.allocator import SlotAllocation, allocate_slot
from energytree.plan import AFTER_LEAVE, BATTERY_FULL, TARGET_MET, Plan
from energytree.problem import Problem
from optimizer.model import EPS, LinearModel
from optimizer.solve import Solution

__all__ = ["MINIMUM_CURRENT", "OTHER_SLOTS", "WAITING_FOR_PRICE", "assemble"]

WAITING_FOR_PRICE = "price: cheaper slots planned"
MINIMUM_CURRENT = "minimum current"  # followed by what leaves no room for it
OTHER_SLOTS = "target: planned in other slots"
OWN = "own"  # the allocator's word for "at its own cap"; named from the EVSE's limits


def assemble(problem: Problem, model: LinearModel, solution: Solution,
             switched_off: np.ndarray, rotation: int) -> Plan:
    """Planned EVSEs fixed at the model's values; the others share the rest slot by slot."""
    x = solution.values
    n, t_count = problem.evse_count, problem.slots
    fixed_a = np.full((n, t_count), np.nan)
    # a target the model leaves out needs nothing (0 kWh): it stays off, as in instant_plan
    has_target = [e for e, target in enumerate(problem.targets)
                  if target is not None and problem.wants_power[e]]
    fixed_a[has_target] = 0.0
    fixed_a[model.evse, model.slot] = np.where(x[: model.cells] > EPS, x[: model.cells], 0.0)
    fixed_phases = problem.max_phases.astype(np.int64)
    reasons = _texts((n, t_count), TARGET_MET)
    met = _targets_met(problem, model, x, solution.activity)
    ended = np.array([AFTER_LEAVE, TARGET_MET], dtype=object)  # (np.where would give np.str_)
    reasons[model.targeted] = ended[met[model.targeted].astype(int)][:, None]
    reasons[model.evse, model.slot] = _cell_reasons(problem, model, x, solution.activity,
                                                    switched_off)
    current = np.nan_to_num(fixed_a)
    phases = fixed_phases.copy()
    power = current * phases * problem.voltage_v
    own = np.zeros((n, t_count), dtype=bool)
    own[model.evse, model.slot] = _at_own_cap(model, x[: model.cells])
    if np.isnan(fixed_a).any():
        _share_the_rest(problem, rotation, fixed_a, fixed_phases,
                        (current, phases, power, reasons))
        own = reasons == OWN  # the allocator names caps too
    reasons[own] = _own_labels(problem, *np.nonzero(own))
    return Plan(problem, current, phases, power, reasons.tolist(), method="optimiser")


def _texts(shape: int | tuple[int, ...], text: str) -> np.ndarray:
    """An array of one text (``np.full`` takes many times longer for objects)."""
    array = np.empty(shape, dtype=object)
    array.fill(text)
    return array


def _share_the_rest(problem: Problem, rotation: int, fixed_a: np.ndarray,
                    fixed_phases: np.ndarray,
                    out: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
    """The instant allocator in each slot with EVSEs the model does not plan (in place)."""
    current, phases, power, reasons = out
    free = np.isnan(fixed_a).any(axis=0)
    room = problem.room_kwh.copy()  # the others stop when their battery is full
    for t in range(problem.slots):
        if free[t]:
            watts = np.nan_to_num(fixed_a[:, t]) * fixed_phases[:, t] * problem.voltage_v
            fixed = SlotAllocation(fixed_a[:, t], fixed_phases[:, t], watts,
                                   reasons[:, t].tolist())
            alloc = allocate_slot(problem, t, rotation=rotation + t, fixed=fixed,
                                  evse_cap_a=_room_cap_a(problem, t, room),
                                  evse_cap_label=BATTERY_FULL)
            current[:, t] = alloc.current_a
            phases[:, t] = np.where(np.abs(alloc.current_a) > EPS, alloc.phases,
                                    fixed_phases[:, t])
            power[:, t] = alloc.current_a * phases[:, t] * problem.voltage_v
            reasons[:, t] = alloc.reasons
        room -= power[:, t].clip(min=0) * problem.grid.hours[t] * problem.efficiency[:, t] / 1000


def _room_cap_a(problem: Problem, t: int, room_kwh: np.ndarray) -> np.ndarray:
    """Per EVSE the current that fills its battery in slot ``t`` (the last bit may take the
    minimum current for part of the slot); infinite where no battery is known."""
    kwh_per_a = (problem.voltage_v * problem.max_phases[:, t] * problem.grid.hours[t]
                 * problem.efficiency[:, t] / 1000.0)
    cap = np.maximum(room_kwh / np.maximum(kwh_per_a, 1e-12), problem.min_current_a[:, t])
    return np.where(room_kwh <= 1e-9, 0.0, cap)


def _own_labels(problem: Problem, evses: np.ndarray, slots: np.ndarray) -> list[str]:
    """For cells at their EVSE's own cap: the limit that caps it (power or a phase current)."""
    if len(evses) == 0:
        return []
    node, table = problem.tree.evse_nodes[evses], problem.imp.all
    current = table.current_a[node, slots]  # [cells, 3]
    power = table.power_w[node, slots]
    phase = current.argmin(axis=1)
    by_power = power / (problem.voltage_v * np.maximum(problem.max_phases[evses, slots], 1)
                        ) < current.min(axis=1)
    power_source = table.power_source[node, slots]
    current_source = table.current_source[node, slots, phase]
    text: dict[tuple[bool, str], str] = {}
    return [text.get((watts, source)) or text.setdefault(
        (watts, source), f"{source}: total_power_W" if watts else f"{source}: ac_max_current_A")
        for watts, source in zip(by_power.tolist(),
                                 np.where(by_power, power_source, current_source).tolist(),
                                 strict=True)]


def _cell_reasons(problem: Problem, model: LinearModel, x: np.ndarray, activity: np.ndarray,
                  switched_off: np.ndarray) -> np.ndarray:
    """Why each cell got what it got: its EVSE's own cap, a tight node, the minimum current,
    its target, or prices (only where they are known and differ); the first that applies."""
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
    # the node has room, but less than this EVSE's minimum current
    no_room = (binding_row < 0) & (amps <= EPS) & (room_row >= 0)
    row = np.where(no_room, room_row, binding_row)
    reasons = _texts(cells, OTHER_SLOTS)
    reasons[switched_off] = f"{MINIMUM_CURRENT}: {OTHER_SLOTS}"
    reasons[_prices_differ(problem, model)[model.evse]] = WAITING_FOR_PRICE
    reasons[_reached_before(problem, model, amps)] = TARGET_MET
    by_row = np.nonzero(row >= 0)[0]
    pairs, first, inverse = np.unique(row[by_row] * problem.slots + model.slot[by_row],
                                      return_index=True, return_inverse=True)
    labels = np.empty(len(pairs), dtype=object)
    labels[:] = [_row_reason(problem, model, int(row[by_row[i]]), int(model.slot[by_row[i]]))
                 for i in first]
    reasons[by_row] = labels[inverse.reshape(-1)]
    short = by_row[no_room[by_row]]
    reasons[short] = [f"{MINIMUM_CURRENT}: {label}" for label in reasons[short]]
    reasons[_at_own_cap(model, amps)] = OWN
    return reasons


def _at_own_cap(model: LinearModel, amps: np.ndarray) -> np.ndarray:
    """Per cell: does it run at its EVSE's own cap? (The last reason to apply.)"""
    return (amps > EPS) & (amps >= model.upper_a - 1e-6)


def _row_without_room_for_minimum(model: LinearModel, activity: np.ndarray,
                                  node_rows: np.ndarray) -> np.ndarray:
    """Per cell, a node row whose room left is below the cell's minimum current (or -1)."""
    coo = model.cell_columns.tocoo()  # per cell its rows, in order (the last counts)
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
    need_of = np.full(problem.evse_count, np.inf)
    for e in model.targeted:
        need_of[e] = problem.targets[e].energy_kwh or np.inf  # type: ignore[union-attr]
    reached = np.empty(len(order), dtype=bool)
    reached[order] = before >= need_of[evse] - 1e-6
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
    """Per EVSE: does its energy row hold without the shortfall columns?"""
    rows = np.array([row for row, label in enumerate(model.row_label) if label[0] == "energy"],
                    dtype=np.int64)
    met = np.zeros(problem.evse_count, dtype=bool)
    if len(rows):
        shortfall = model.matrix[rows][:, model.cells:] @ x[model.cells:]
        need = np.array([model.row_label[row][3] for row in rows])
        evses = model.targeted[[model.row_label[row][1] for row in rows]]
        met[evses] = activity[rows] - shortfall >= need - 1e-6
    return met
