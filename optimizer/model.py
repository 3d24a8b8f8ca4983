"""The linear program: charging currents of the EVSEs that have a target, over the whole tree.

Variables are the current per phase ``x[e, t]`` [A] of each "cell" (an EVSE with a target in a
slot where it may import, before its leave time), plus shortfall variables. Everything is
built as numpy arrays and handed to OR-Tools in one sparse matrix — no Python call per
coefficient.

Objective, in this order of weight:

1. shortfall against each target, in bands of ``1/BANDS`` of the target with rising penalty,
   so a short-of-capacity site shares the shortfall fairly (relative to each target);
2. energy cost at the import price; slots at or below an EVSE's ``price_limit`` earn a reward
   instead, so such an EVSE charges at full power whenever the price allows;
3. a tiny cost growing with time, so that when it costs nothing extra energy comes earlier.

Rows: per inner node, slot and grid phase (current) and per node and slot (power) — only rows
that can bind; per target the energy balance; per slot the local generation that
``full_autonomy`` EVSEs may use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from energytree.limits import PHASES
from energytree.problem import Problem

__all__ = ["LinearModel", "build_model"]

BANDS = 20  # fairness within a band is not enforced: 20 bands share to 5 % of a target
SHORTFALL_PENALTY = 100.0  # per kWh in the first band [currency/kWh]
PRICE_LIMIT_REWARD = 10.0  # per kWh while the price is at or below the limit
EARLIER_TIEBREAK = 1e-3  # per kWh at the end of the horizon, 0 now; below any real tariff step
OBJECTIVE_SCALE = 1_000.0  # the solver sees milli-currency, so the tie-break clears tolerances
EPS = 1e-7


@dataclass
class LinearModel:
    """Arrays ready for OR-Tools, and the maps back to EVSEs and slots."""

    evse: np.ndarray  # EVSE index of each cell
    slot: np.ndarray
    phases: np.ndarray
    min_a: np.ndarray
    upper_a: np.ndarray
    kwh_per_a: np.ndarray  # energy into the car per ampere in the cell [kWh/A]
    targeted: np.ndarray  # EVSEs in the model
    lower: np.ndarray
    upper: np.ndarray
    cost: np.ndarray
    matrix: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    row_label: list[tuple[str, int, int]]  # (kind, inner node position, phase) per row

    @property
    def cells(self) -> int:
        return len(self.evse)

    @cached_property
    def cell_columns(self) -> sp.csc_matrix:
        """The cells' columns of ``matrix``, column by column (the rows each cell is in)."""
        return self.matrix[:, : self.cells].tocsc()


def _planned_evses(problem: Problem) -> np.ndarray:
    planned = []
    for e, target in enumerate(problem.targets):
        if target is None or not problem.wants_power[e]:
            continue
        if ((target.energy_kwh or 0.0) > EPS or target.price_limit is not None
                or target.full_autonomy):
            planned.append(e)
    return np.array(planned, dtype=np.int64)


def _cells(problem: Problem, evses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    volts = problem.voltage_v
    phases = problem.max_phases[evses].astype(float)
    upper = np.minimum(problem.evse_cap_a[0][evses],
                       problem.evse_cap_w[0][evses] / (volts * np.maximum(phases, 1)))
    deadline = np.array([problem.targets[e].deadline_slot for e in evses])  # type: ignore[union-attr]
    before = np.arange(problem.slots)[None, :] < deadline[:, None]
    usable = before & (upper > EPS) & (upper + EPS >= problem.min_current_a[evses])
    rows, slots = np.nonzero(usable)
    return rows, slots, upper


def _node_rows(problem: Problem, evse: np.ndarray, slot: np.ndarray, phases: np.ndarray,
               upper: np.ndarray, first_row: int,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple]]:
    """Current rows per (node, slot, phase) and power rows per (node, slot) that can bind."""
    k_count, t_count = len(problem.inner), problem.slots
    if k_count == 0 or len(evse) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), []
    cell_nodes = problem.inner_path_matrix[evse]  # [C, D]
    depth = cell_nodes.shape[1]
    cell_idx = np.repeat(np.arange(len(evse)), depth)
    node_idx = cell_nodes.ravel()
    keep = node_idx >= 0
    cell_idx, node_idx = cell_idx[keep], node_idx[keep]
    t_idx = slot[cell_idx]
    volts = problem.voltage_v
    entries_r, entries_c, entries_v, labels = [], [], [], []
    next_row = first_row

    def add(key: np.ndarray, coef: np.ndarray, cells: np.ndarray, cap: np.ndarray,
            reach: np.ndarray, kind: str,
            where: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
            groups: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Rows for the keys whose cells can reach ``cap``; ``where`` gives their labels'
        node position and phase; ``groups`` is ``_groups(key, len(cap))`` if known."""
        nonlocal next_row
        uniq, inverse = groups or _groups(key, len(cap))
        possible = np.bincount(inverse, weights=reach, minlength=len(uniq))
        binds = possible > cap[uniq] + EPS
        row_of = np.full(len(uniq), -1, dtype=np.int64)
        row_of[binds] = next_row + np.arange(binds.sum())
        rows = row_of[inverse]
        sel = rows >= 0
        entries_r.append(rows[sel])
        entries_c.append(cells[sel])
        entries_v.append(coef[sel])
        bound = uniq[binds]
        node, phase = where(bound)
        labels.extend(zip([kind] * len(bound), node.tolist(), phase.tolist(),
                          cap[bound].tolist(), strict=True))
        next_row += int(binds.sum())

    # A node whose cells all run on three phases gets one current row, with the smallest
    # phase cap, instead of three identical ones.
    pair = node_idx * t_count + t_idx
    pairs, pair_inv = _groups(pair, k_count * t_count)
    cell_phases, cell_upper = phases[cell_idx], upper[cell_idx]
    all_three = np.bincount(pair_inv, weights=cell_phases < PHASES, minlength=len(pairs)) == 0
    three = all_three[pair_inv]
    caps = problem.node_cap_a[0].reshape(-1)  # [K*T*3] in (k, t, phase) order
    min_caps = problem.node_cap_a[0].min(axis=2).reshape(-1)
    add(pair[three], np.ones(int(three.sum())), cell_idx[three], min_caps,
        cell_upper[three], "A", lambda u: (u // t_count, _min_phase(problem, u, t_count)))
    # one call for all phases: with a phase rotation, an EVSE's first phase and another's
    # second may be the same grid phase, and their currents add up on it
    rest = np.nonzero(~three)[0]  # (none where every EVSE runs on three phases)
    rest_cells, rest_phases = cell_idx[rest], cell_phases[rest]
    rest_pair, rest_map = pair[rest], problem.phase_map[evse[rest_cells]]
    phase_cells, phase_keys = [], []
    for phase in range(PHASES):
        uses = rest_phases > phase
        phase_cells.append(rest_cells[uses])
        phase_keys.append(rest_pair[uses] * PHASES + rest_map[uses, phase])
    cells = np.concatenate(phase_cells)
    add(np.concatenate(phase_keys), np.ones(len(cells)), cells, caps, upper[cells], "A",
        lambda u: (u // (t_count * PHASES), u % PHASES))
    watts = cell_phases * volts
    add(pair, watts, cell_idx, problem.node_cap_w[0].reshape(-1), cell_upper * watts,
        "W", lambda u: (u // t_count, np.full(len(u), PHASES)), (pairs, pair_inv))
    return np.concatenate(entries_r), np.concatenate(entries_c), np.concatenate(entries_v), labels


def _min_phase(problem: Problem, pairs: np.ndarray, t_count: int) -> np.ndarray:
    """The grid phase with the smallest cap of each node-slot pair (for row labels)."""
    return problem.node_cap_a[0][pairs // t_count, pairs % t_count].argmin(axis=1)


def _groups(key: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(key, return_inverse=True)`` for keys in ``range(space)``: a count per key
    instead of a sort (the keys are node-slot(-phase) numbers, a few ten thousand)."""
    present = np.bincount(key, minlength=space) > 0
    return np.nonzero(present)[0], (np.cumsum(present) - 1)[key]


@dataclass
class _Rows:
    """The LP's columns and rows as they are added; ``matrix`` assembles them once."""

    var_lower: list[np.ndarray]
    var_upper: list[np.ndarray]
    var_cost: list[np.ndarray]
    n_vars: int
    rows_r: list[np.ndarray] = field(default_factory=list)
    rows_c: list[np.ndarray] = field(default_factory=list)
    rows_v: list[np.ndarray] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    labels: list[tuple] = field(default_factory=list)

    def variables(self, lower: np.ndarray, upper: np.ndarray, cost: np.ndarray) -> np.ndarray:
        """Add columns; their indices."""
        self.var_lower.append(lower)
        self.var_upper.append(upper)
        self.var_cost.append(cost)
        self.n_vars += len(lower)
        return np.arange(self.n_vars - len(lower), self.n_vars)

    def row(self, label: tuple, lower: float, upper: float,
            *terms: tuple[np.ndarray, np.ndarray]) -> None:
        """Add ``lower ≤ Σ values · x[columns] ≤ upper``, one (columns, values) per term."""
        for columns, values in terms:
            self.rows_r.append(np.full(len(columns), len(self.lower)))
            self.rows_c.append(columns)
            self.rows_v.append(values)
        self.lower.append(lower)
        self.upper.append(upper)
        self.labels.append(label)

    def block(self, rows: np.ndarray, columns: np.ndarray, values: np.ndarray,
              labels: list[tuple]) -> None:
        """Add rows built elsewhere (numbered from ``len(self.lower)``), each ≤ its label's cap."""
        self.rows_r.append(rows)
        self.rows_c.append(columns)
        self.rows_v.append(values)
        for label in labels:
            self.row(label, -np.inf, label[3])

    def matrix(self) -> sp.csr_matrix:
        return sp.csr_matrix(
            (np.concatenate(self.rows_v), (np.concatenate(self.rows_r),
                                           np.concatenate(self.rows_c))),
            shape=(len(self.lower), self.n_vars))


def _energy_rows(model: _Rows, problem: Problem, evses: np.ndarray, local: np.ndarray,
                 kwh: np.ndarray, min_a: np.ndarray) -> None:
    """Each target's energy balance (with banded shortfall columns) and its battery room.

    The rows are decided target by target (plain Python, no array per target); their
    entries are laid out afterwards in one go, block by block: a row with a target's cells
    (which are consecutive: ``local`` is sorted) or with its shortfall bands.
    """
    counts = np.bincount(local, minlength=len(evses))
    starts = (np.cumsum(counts) - counts).tolist()
    most_at_minimum = np.zeros(len(evses))
    np.maximum.at(most_at_minimum, local, min_a * kwh)
    blocks: list[tuple[int, int, int, bool]] = []  # (row, first column, columns, cells?)
    bands: list[float] = []  # each band's width, per target with a need
    for pos, e in enumerate(evses.tolist()):
        target = problem.targets[e]
        assert target is not None
        need = target.energy_kwh or 0.0
        # without an energy target (price limit, full autonomy) only the battery's room caps
        cap = need if target.price_limit is None and target.energy_kwh is not None else (
            target.room_kwh)
        cells = (starts[pos], int(counts[pos]), True)
        if need <= EPS:
            blocks.append((len(model.lower), *cells))
            model.row(("room", pos, 0, cap), -np.inf, cap)
            continue
        shortfall = (model.n_vars + BANDS * len(bands), BANDS, False)
        bands.append(need / BANDS)
        blocks += [(len(model.lower), *cells), (len(model.lower), *shortfall)]
        if cap == need:  # energy + shortfall == need, but for the last slot: it may have to
            # run at the minimum current, past the need (the car stops by itself, as with
            # instant_plan); without this slack such a target gets nothing at all (not with a
            # reward for energy: that would fill the slack on purpose)
            rewarded = target.price_limit is not None or target.full_autonomy
            slack = 0.0 if rewarded else float(most_at_minimum[pos])
            model.row(("energy", pos, 0, need), need, need + slack)
            continue
        model.row(("energy", pos, 0, need), need, np.inf)
        if np.isfinite(cap):
            blocks.append((len(model.lower), *cells))
            model.row(("room", pos, 0, cap), -np.inf, cap)
    model.variables(np.zeros(BANDS * len(bands)), np.repeat(bands, BANDS),
                    np.tile(SHORTFALL_PENALTY * (1.0 + np.arange(BANDS)), len(bands)))
    if blocks:
        _lay_out(model, np.array(blocks, dtype=np.int64), kwh)


def _lay_out(model: _Rows, blocks: np.ndarray, kwh: np.ndarray) -> None:
    """The entries of ``blocks`` (rows of row, first column, columns, cells?) in order."""
    row, first, size, cells = blocks.T
    block = np.repeat(np.arange(len(blocks)), size)
    columns = first[block] + np.arange(len(block)) - np.repeat(np.cumsum(size) - size, size)
    values = np.ones(len(block))
    of_cells = cells[block].astype(bool)
    values[of_cells] = kwh[columns[of_cells]]
    model.rows_r.append(row[block])
    model.rows_c.append(columns)
    model.rows_v.append(values)


def build_model(problem: Problem) -> LinearModel:
    """The LP of ``problem`` (see the module docstring)."""
    evses = _planned_evses(problem)
    local, slot, upper_all = _cells(problem, evses)
    evse = evses[local]
    phases = problem.max_phases[evse, slot].astype(float)
    upper_a = upper_all[local, slot]
    hours = problem.grid.hours[slot]
    grid_kwh = phases * problem.voltage_v * hours / 1000.0
    kwh = grid_kwh * problem.efficiency[evse, slot]
    price = np.nan_to_num(problem.price_import[slot])
    targets = [problem.targets[e] for e in evses.tolist()]
    limits = np.array([t.price_limit for t in targets], dtype=float)[local]  # type: ignore[union-attr]
    autonomous = np.array([t.full_autonomy for t in targets], dtype=bool)[local]  # type: ignore[union-attr]
    # local generation costs nothing: a full-autonomy EVSE takes all it may, like a cheap slot
    cheap = autonomous | ~np.isnan(limits) & (price <= np.nan_to_num(limits, nan=-np.inf))
    earlier = EARLIER_TIEBREAK * slot / max(problem.slots, 1)
    cost = grid_kwh * (price - PRICE_LIMIT_REWARD * cheap + earlier)
    min_a = problem.min_current_a[evse, slot]

    model = _Rows([np.zeros(len(evse))], [upper_a], [cost], len(evse))
    _energy_rows(model, problem, evses, local, kwh, min_a)
    for t in np.unique(slot[autonomous]):  # local generation for full-autonomy EVSEs
        mine = np.nonzero(autonomous & (slot == t))[0]
        generation = float(problem.generation_w[t])
        model.row(("generation", int(t), 0, generation), -np.inf, max(0.0, generation),
                  (mine, phases[mine] * problem.voltage_v))
    model.block(*_node_rows(problem, evse, slot, phases, upper_a, len(model.lower)))
    return LinearModel(
        evse=evse, slot=slot, phases=phases.astype(np.int64), min_a=min_a, upper_a=upper_a,
        kwh_per_a=kwh, targeted=evses, lower=np.concatenate(model.var_lower),
        upper=np.concatenate(model.var_upper),
        cost=OBJECTIVE_SCALE * np.concatenate(model.var_cost), matrix=model.matrix(),
        row_lower=np.array(model.lower), row_upper=np.array(model.upper),
        row_label=model.labels,
    )
