"""One planning problem: the tree's limits and the EVSEs' wishes resampled onto a slot grid.

Both the instant allocator and the optimiser read a ``Problem``; neither looks at the request
JSON again. Currents are amperes per phase, powers watts on the root side, energies kWh.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache, cached_property

import numpy as np

from energytree.errors import RequestError
from energytree.limits import PHASES, ByNode, SlotLimits, tighten
from energytree.resample import InForce, entry_in_force, resample_all
from energytree.schedule import (
    prices_per_slot,
    resample_limits,
    resample_values,
    setpoints_per_slot,
)
from energytree.slots import SlotGrid, build_grid
from energytree.tree import Node, Tree
from energytree.types import (
    EnergyFlowRequest,
    EvseState,
    ExternalLimits,
    OptimizerTarget,
    PricePerKwh,
    TimedValue,
    format_timestamp,
)

__all__ = [
    "NOT_WANTING_POWER",
    "ExternalSource",
    "PlanOptions",
    "Problem",
    "Target",
    "battery_room_kwh",
    "build_problem",
    "phase_usage",
    "with_car_minimums",
    "with_car_phases",
]

NOT_WANTING_POWER = {
    EvseState.Unplugged,
    EvseState.Finished,
    EvseState.Disabled,
    EvseState.WaitForAuth,
}
PHASE_INDEX = {"L1": 0, "L2": 1, "L3": 2}


@dataclass(frozen=True)
class PlanOptions:
    """How to plan: slot grid and electrical constants."""

    slot_s: float = 900.0
    horizon_s: float = 86_400.0
    nominal_voltage_v: float = 230.0


@dataclass(frozen=True)
class ExternalSource:
    """A named external limit on one node (grid operator, OCPP, API …), combined by minimum."""

    name: str
    node_uuid: str
    limits: ExternalLimits


@dataclass(frozen=True)
class Target:
    """An EVSE's goal in planning terms."""

    energy_kwh: float | None
    deadline_slot: int
    room_kwh: float
    price_limit: float | None
    full_autonomy: bool


@dataclass(frozen=True)
class Problem:
    """Arrays are indexed ``[evse, slot]`` for EVSEs and ``[node, slot(, phase)]`` for nodes."""

    tree: Tree
    grid: SlotGrid
    voltage_v: float
    imp: ByNode
    exp: ByNode
    phase_map: np.ndarray
    switchable: np.ndarray
    wants_power: np.ndarray
    efficiency: np.ndarray
    min_current_a: np.ndarray
    max_phases: np.ndarray
    min_phases: np.ndarray
    price_import: np.ndarray
    price_export: np.ndarray
    generation_w: np.ndarray
    targets: list[Target | None]
    inner: list[Node]
    node_cap_a: tuple[np.ndarray, np.ndarray]
    node_cap_w: tuple[np.ndarray, np.ndarray]
    evse_cap_a: tuple[np.ndarray, np.ndarray]
    evse_cap_w: tuple[np.ndarray, np.ndarray]
    room_kwh: np.ndarray  # what each car's battery can still take [kWh]; inf if unknown
    notes: tuple[str, ...] = ()

    @property
    def evse_count(self) -> int:
        return len(self.tree.evses)

    @property
    def slots(self) -> int:
        return len(self.grid)

    @cached_property
    def inner_lo(self) -> np.ndarray:
        """First EVSE below each inner node."""
        return np.array([n.evse_lo for n in self.inner], dtype=np.int64)

    @cached_property
    def inner_hi(self) -> np.ndarray:
        """One past the last EVSE below each inner node."""
        return np.array([n.evse_hi for n in self.inner], dtype=np.int64)

    @cached_property
    def evse_uuids(self) -> list[str]:
        """The EVSEs' uuids in tree order."""
        return [node.uuid for node in self.tree.evses]

    @cached_property
    def export_min_current_a(self) -> np.ndarray:
        """Each EVSE's own minimum export current per slot [A]."""
        return self.exp.all.min_current_a[self.tree.evse_nodes]

    @cached_property
    def inner_path_matrix(self) -> np.ndarray:
        """[N, D] ``inner_paths`` as one matrix (D at least 1), each row padded with -1."""
        position = np.full(len(self.tree) + 1, -1, dtype=np.int64)  # [-1] (padding) → -1
        position[[node.index for node in self.inner]] = np.arange(len(self.inner))
        paths = position[self.tree.evse_paths]  # an EVSE is no inner node: -1 too
        return paths[:, : max(1, paths.shape[1] - 1)]

    @cached_property
    def inner_paths(self) -> list[np.ndarray]:
        """For every EVSE, the positions (in ``inner``) of the nodes above it."""
        return [row[row >= 0] for row in self.inner_path_matrix]

    @cached_property
    def wired_map(self) -> np.ndarray:
        """[N, 3] the grid phase of each EVSE phase as wired (``phase_map`` before any car's
        measured phases reordered it)."""
        return np.array([_parse_phase_map(n.request) for n in self.tree.evses], dtype=np.int8)

    def limits(self, node: Node, export: bool = False) -> SlotLimits:
        return (self.exp if export else self.imp)[node.index]


def phase_usage(phase_map: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """[N, 3] with 1 where an EVSE running on ``phases`` phases draws on that grid phase."""
    usage = np.zeros((len(phases), PHASES))
    for k in range(PHASES):
        rows = np.nonzero(phases > k)[0]
        usage[rows, phase_map[rows, k]] = 1.0
    return usage


def with_car_phases(problem: Problem, car_phases: dict[int, tuple[int, ...]]) -> Problem:
    """The problem with each listed EVSE budgeted on the EVSE phases its car draws on.

    ``car_phases`` maps an EVSE's position to the EVSE phases (0..2) its car was measured on;
    those grid phases come first in its phase map and cap its phase count, in every slot.
    """
    if not car_phases:
        return problem
    phase_map = problem.phase_map.copy()
    max_phases, min_phases = problem.max_phases.copy(), problem.min_phases.copy()
    for e, used in car_phases.items():
        if not used or e >= problem.evse_count:
            continue
        row = problem.phase_map[e]
        phase_map[e] = [row[k] for k in used] + [row[k] for k in range(PHASES) if k not in used]
        max_phases[e] = np.minimum(max_phases[e], len(used))
        min_phases[e] = np.minimum(min_phases[e], max_phases[e])
    return replace(problem, phase_map=phase_map, max_phases=max_phases, min_phases=min_phases)


def with_car_minimums(problem: Problem, minimum_a: dict[int, float]) -> Problem:
    """The problem with each listed EVSE's minimum current raised to what its car needs
    (``energytree.carminimum``); a minimum above the EVSE's cap pauses it in that slot."""
    if not minimum_a:
        return problem
    min_current = problem.min_current_a.copy()
    for e, amps in minimum_a.items():
        if e < problem.evse_count:
            min_current[e] = np.maximum(min_current[e], amps)
    return replace(problem, min_current_a=min_current)


def _parse_phase_map(request: EnergyFlowRequest) -> tuple[int, ...]:
    return _phase_map(request.phase_rotation or "L1L2L3")


@cache
def _phase_map(rotation: str) -> tuple[int, ...]:
    """Grid phase of each EVSE phase (six rotations exist, a site has thousands of EVSEs)."""
    return tuple(PHASE_INDEX[rotation[i : i + 2]] for i in range(0, 6, 2))


def _with_sources(
    node: Node, limits: SlotLimits, grid: SlotGrid, sources: Sequence[ExternalSource],
    export: bool,
) -> SlotLimits:
    for source in sources:
        extra = source.limits.schedule_export if export else source.limits.schedule_import
        if extra:  # an external source with an empty schedule restricts nothing
            limits = tighten(limits, resample_limits(extra, grid, f"{node.uuid}/{source.name}"))
    return limits


def _apply_setpoints(
    node: Node, grid: SlotGrid, imp: SlotLimits, exp: SlotLimits
) -> tuple[SlotLimits, SlotLimits]:
    """Setpoints act as limits: a positive one caps import and forbids export, and back."""
    if not node.request.schedule_setpoints:
        return imp, exp
    imp, exp = _writable(imp), _writable(exp)
    meter = node.request.energy_usage_root or node.request.energy_usage_leaves
    freq = meter.frequency_Hz.L1 if meter and meter.frequency_Hz else None
    amps, watts = setpoints_per_slot(node.request.schedule_setpoints, grid, freq)
    label = f"{node.uuid}/setpoint"
    for values, caps, sources in (
        (amps, "current_a", "current_source"),
        (watts, "power_w", "power_source"),
    ):
        for limits, sign in ((imp, 1.0), (exp, -1.0)):
            cap = getattr(limits, caps)
            src = getattr(limits, sources)
            wanted = sign * values
            applies = ~np.isnan(values)
            allowed = np.where(wanted > 0, wanted, 0.0)
            if cap.ndim == 2:
                allowed = allowed[:, None]
                tighter = applies[:, None] & (allowed < cap)
            else:
                tighter = applies & (allowed < cap)
            np.copyto(cap, np.minimum(cap, allowed), where=tighter)
            np.copyto(src, label, where=tighter)
    return imp, exp


def _writable(limits: SlotLimits) -> SlotLimits:
    return replace(limits, current_source=limits.current_source.copy(),
                   power_source=limits.power_source.copy())


def battery_room_kwh(target: OptimizerTarget | None) -> float:
    """What the car's battery can still take: from its SoC, or a whole battery if the SoC is
    unknown; infinite where no capacity is known."""
    if target is None or target.car_battery_capacity_kWh is None:
        return np.inf
    soc = target.car_battery_soc or 0.0
    return target.car_battery_capacity_kWh * (100.0 - soc) / 100.0


def _targets(requests: Sequence[EnergyFlowRequest], grid: SlotGrid, now: datetime
             ) -> list[Target | None]:
    """Each EVSE's target; the leave times' slots are found in one ``searchsorted``."""
    leave = [r.optimizer_target.leave_time if r.optimizer_target else None for r in requests]
    stamps = np.array([np.nan if t is None or t <= now else t.timestamp() for t in leave])
    slots = np.searchsorted(grid.starts, stamps, side="left").tolist()
    return [_target(r.optimizer_target, len(grid) if math.isnan(stamp) else slot)
            for r, stamp, slot in zip(requests, stamps.tolist(), slots, strict=True)]


def _target(target: OptimizerTarget | None, deadline: int) -> Target | None:
    """``deadline``: the slot of the leave time (the horizon's end if none, or past)."""
    if target is None:
        return None
    room = battery_room_kwh(target)
    energy = target.energy_amount_needed
    if (energy is None and target.car_battery_soc is not None
            and target.car_battery_capacity_kWh is not None):
        goal = 100.0 if target.charge_to_max_percent is None else target.charge_to_max_percent
        energy = max(0.0, target.car_battery_capacity_kWh * (goal - target.car_battery_soc))
        energy /= 100.0
    if energy is not None:  # no car takes more than its battery holds
        energy = min(energy, room)
    if energy is None and target.price_limit is None and not target.full_autonomy:
        return None
    return Target(
        energy_kwh=energy,
        deadline_slot=deadline,
        room_kwh=float(room),
        price_limit=target.price_limit,
        full_autonomy=bool(target.full_autonomy),
    )


def _past_leave_times(requests: Sequence[EnergyFlowRequest], now: datetime) -> list[str]:
    notes = []
    for request in requests:
        target = request.optimizer_target
        if target and target.leave_time is not None and target.leave_time <= now:
            notes.append(f"{request.uuid}: leave time {format_timestamp(target.leave_time)} "
                         "has passed; its target is planned to the end of the horizon")
    return notes


def _unknown_batteries(requests: Sequence[EnergyFlowRequest], room_kwh: Sequence[float]
                       ) -> list[str]:
    """A note naming the EVSEs planned without any bound from a battery (at most five);
    ``room_kwh`` is each one's ``battery_room_kwh``."""
    unknown = [r.uuid for r, room in zip(requests, room_kwh, strict=True)
               if r.evse_state not in NOT_WANTING_POWER and math.isinf(room)
               and not (r.optimizer_target and r.optimizer_target.energy_amount_needed)]
    if not unknown:
        return []
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    return [f"no battery capacity known for {', '.join(unknown[:5])}{more}: planned as if "
            "the car could take everything offered (set battery_kWh or a target)"]


def _breakpoints(nodes: Sequence[Node]) -> list[datetime]:
    """Every time a schedule, forecast or leave time of the tree changes something."""
    requests = [node.request for node in nodes]
    points = [e.timestamp for r in requests for e in r.schedule_import]
    points += [e.timestamp for r in requests for e in r.schedule_export]
    points += [e.timestamp for r in requests for e in r.schedule_setpoints]
    points += [v.timestamp for r in requests for v in r.local_generation_W or ()]
    points += [r.optimizer_target.leave_time for r in requests
               if r.optimizer_target and r.optimizer_target.leave_time]
    return points


def build_problem(
    request: EnergyFlowRequest,
    now: datetime,
    options: PlanOptions | None = None,
    external: Sequence[ExternalSource] = (),
    prices: Sequence[PricePerKwh] = (),
) -> Problem:
    """Resample a request (plus external limits) onto a slot grid starting at ``now``.

    ``prices`` (e.g. from a price file) replace the prices in the root's import schedule.
    """
    options = options or PlanOptions()
    tree = Tree.from_request(request)
    if not tree.evses:
        raise RequestError("the request has no EVSE (node_type 'Evse') to plan for")
    by_node: dict[str, list[ExternalSource]] = {}
    for source in external:
        tree.node(source.node_uuid)  # unknown node → NotFoundError
        by_node.setdefault(source.node_uuid, []).append(source)
    try:
        grid = build_grid(
            now,
            options.horizon_s,
            options.slot_s,
            [*_breakpoints(tree.nodes), *(p.timestamp for p in prices)],
        )
    except ValueError as exc:  # too many slots or breakpoints: the caller's input
        raise RequestError(str(exc)) from exc
    nodes = list(tree)  # in index order
    uuids = [node.uuid for node in nodes]
    in_force = entry_in_force([node.request.schedule_import for node in nodes], grid)
    imp = resample_all([node.request.schedule_import for node in nodes], grid, uuids, in_force)
    exp = resample_all([node.request.schedule_export for node in nodes], grid, uuids)
    wired = imp.all.max_phases[tree.evse_nodes]  # the EVSEs' own, before sources
    for node in nodes:
        sources = by_node.get(node.uuid, [])
        if sources or node.request.schedule_setpoints:
            node_imp = _with_sources(node, imp[node.index], grid, sources, False)
            node_exp = _with_sources(node, exp[node.index], grid, sources, True)
            node_imp, node_exp = _apply_setpoints(node, grid, node_imp, node_exp)
            imp.put(node.index, node_imp)
            exp.put(node.index, node_exp)
    problem = _assemble(tree, grid, options, now, imp, exp, wired, in_force)
    _check_bounded(problem)
    if prices:
        series = [TimedValue(timestamp=p.timestamp, value=p.value) for p in prices]
        problem.price_import[:] = resample_values(series, grid, np.nan)
    return problem


def _assemble(
    tree: Tree,
    grid: SlotGrid,
    options: PlanOptions,
    now: datetime,
    imp: ByNode,
    exp: ByNode,
    wired: np.ndarray,
    in_force: InForce,
) -> Problem:
    """``wired`` is each EVSE's own phase count per slot (its request, without any source);
    ``in_force`` the entries of the nodes' import schedules in force in each slot."""
    # path rules: largest minimum, smallest phase cap, largest phase floor
    min_current = _along_paths(tree, imp.all.min_current_a, np.maximum)
    max_phases = _along_paths(tree, imp.all.max_phases, np.minimum)
    min_phases = _along_paths(tree, imp.all.min_phases, np.maximum)
    evse_requests = [e.request for e in tree.evses]
    switchable = np.array([_switchable(r) for r in evse_requests], dtype=bool)
    # an EVSE that cannot switch draws on every phase it is wired for, whatever a limit's
    # phase count says: it is budgeted on all of them (a 1-phase W limit then divides by 3)
    max_phases[~switchable] = wired[~switchable]
    min_phases[~switchable] = wired[~switchable]
    min_phases = np.minimum(min_phases, max_phases)
    # the same entry selection as the limits (unsorted input, duplicates: last wins)
    entries, pick = in_force
    eff = np.array([entry.conversion_efficiency or 1.0 for entry in entries] + [1.0])
    efficiency = eff[pick[tree.evse_nodes]]  # -1 (empty) picks the 1.0 at the end
    root = tree.root.request
    inner = tree.inner_nodes()
    caps = [_stack_caps(tree, inner, limits) for limits in (imp, exp)]
    rooms = [battery_room_kwh(r.optimizer_target) for r in evse_requests]
    return Problem(
        tree=tree,
        grid=grid,
        voltage_v=options.nominal_voltage_v,
        imp=imp,
        exp=exp,
        phase_map=np.array([_parse_phase_map(r) for r in evse_requests], dtype=np.int8),
        switchable=switchable,
        wants_power=np.array([r.evse_state not in NOT_WANTING_POWER for r in evse_requests]),
        efficiency=efficiency,
        min_current_a=min_current,
        max_phases=max_phases,
        min_phases=min_phases,
        price_import=prices_per_slot(root.schedule_import, grid),
        price_export=prices_per_slot(root.schedule_export, grid),
        generation_w=resample_values(root.local_generation_W or [], grid, 0.0),
        targets=_targets(evse_requests, grid, now),
        room_kwh=np.array(rooms),
        notes=(*_past_leave_times(evse_requests, now), *_unknown_batteries(evse_requests, rooms)),
        inner=inner,
        node_cap_a=(caps[0][0], caps[1][0]),
        node_cap_w=(caps[0][1], caps[1][1]),
        evse_cap_a=(caps[0][2], caps[1][2]),
        evse_cap_w=(caps[0][3], caps[1][3]),
    )


def _along_paths(tree: Tree, per_node: np.ndarray, combine: np.ufunc) -> np.ndarray:
    """Per EVSE and slot, ``per_node`` ([node, slot]) combined over the nodes from the root
    to the EVSE: one array operation per tree level."""
    paths = tree.evse_paths
    own = tree.evse_nodes
    combined = per_node[own]
    for column in paths.T[:-1]:
        # a shorter path's padding takes the EVSE again (combining a value twice changes nothing)
        combine(combined, per_node[np.where(column >= 0, column, own)], out=combined)
    return combined


def _stack_caps(tree: Tree, inner: list[Node], limits: ByNode
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Caps as dense arrays: inner nodes [K, T, 3] and [K, T]; EVSEs [N, T] and [N, T]."""
    at = np.array([n.index for n in inner], dtype=np.int64)
    evses = tree.evse_nodes
    table = limits.all
    if limits.empty:  # nothing allowed anywhere (export, often): zeros, without gathering
        slots = table.power_w.shape[1]
        return (np.zeros((len(at), slots, PHASES)), np.zeros((len(at), slots)),
                np.zeros((len(evses), slots)), np.zeros((len(evses), slots)))
    return (table.current_a[at], table.power_w[at],
            _smallest_phase(table.current_a[evses]), table.power_w[evses])


def _smallest_phase(current_a: np.ndarray) -> np.ndarray:
    """``current_a.min(axis=-1)`` for three phases (a reduction over a 3-long last axis is
    many times slower)."""
    return np.minimum(np.minimum(current_a[..., 0], current_a[..., 1]), current_a[..., 2])


def _switchable(request: EnergyFlowRequest) -> bool:
    return any(
        e.limits_to_root.ac_supports_changing_phases_during_charging
        or e.limits_to_leaves.ac_supports_changing_phases_during_charging
        for e in request.schedule_import
    )


def _check_bounded(problem: Problem) -> None:
    """Every EVSE needs a finite cap on its path wherever it may draw, or sharing has no end."""
    k_count = len(problem.inner)
    paths = problem.inner_path_matrix
    paths = np.where(paths >= 0, paths, k_count)  # k_count: a node without a cap
    for d, field in ((0, "schedule_import"), (1, "schedule_export")):
        own = np.minimum(problem.evse_cap_a[d], problem.evse_cap_w[d])
        caps = problem.node_cap_a[d]
        largest = np.maximum(np.maximum(caps[..., 0], caps[..., 1]), caps[..., 2])
        nodes = np.minimum(largest, problem.node_cap_w[d])
        nodes = np.concatenate([nodes, np.full((1, problem.slots), np.inf)])
        open_a = (problem.evse_cap_a[d] > 0) & (problem.evse_cap_w[d] > 0)
        if d == 1:  # export is only used where import is closed
            open_a &= ~((problem.evse_cap_a[0] > 0) & (problem.evse_cap_w[0] > 0))
        bound = np.minimum(own, nodes[paths].min(axis=1))
        unbounded = np.nonzero(np.any(open_a & np.isinf(bound), axis=1))[0]
        if len(unbounded):
            raise RequestError(
                f"EVSE {problem.tree.evses[unbounded[0]].uuid!r}: no finite ac_max_current_A "
                f"or total_power_W in {field} on its path from the root; set at least one limit"
            )
