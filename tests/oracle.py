"""An independent oracle for allocations: limits read straight from the request JSON.

It re-implements entry selection, the root/leaves merge and ampere setpoints, and recomputes
every sum itself; it shares no code with ``energytree``'s schedule, problem or allocator
modules. ``check_slot`` asserts, for one slot:

1. safety: per node and grid phase, Σ signed current of the EVSEs below that use the phase
   ≤ import cap (export below a node nets against import), Σ export ≤ export cap, the same
   for watts, and every EVSE within its own caps;
2. all-or-nothing: every EVSE gets 0 or at least its minimum current;
3. no waste (``maximal=True``): an EVSE that charges below its maximum has a tight node on its
   path (on a phase it uses, or on power); an idle EVSE that wants power cannot fit its minimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from energytree.admission import MIN_ROOM_A
from energytree.types import EnergyFlowRequest, LimitsReq, ScheduleReqEntry

VOLT = 230.0
TOL = 1e-6
GRID_PHASES = {"L1": 0, "L2": 1, "L3": 2}
IDLE_STATES = {"Unplugged", "Finished", "Disabled", "WaitForAuth"}



@dataclass
class Caps:
    """One node's limits in one direction at one instant (inf = no cap)."""

    phase_a: np.ndarray  # per grid phase
    power_w: float
    min_a: float
    max_phases: int

    @property
    def amps(self) -> float:
        return float(self.phase_a.min())


def _entry_at(entries: list, t: datetime):
    """First entry applies backwards, last forever, inclusive, duplicate timestamps: last wins."""
    before = [i for i, e in enumerate(entries) if e.timestamp <= t]
    if before:
        latest = max(entries[i].timestamp for i in before)
        return entries[max(i for i in before if entries[i].timestamp == latest)]
    first = min(e.timestamp for e in entries)
    return next(e for e in entries if e.timestamp == first)


def _lo(*values: float | None) -> float:
    return min([v for v in values if v is not None], default=np.inf)


def _merged(entry: ScheduleReqEntry) -> Caps:
    root, leaves = entry.limits_to_root, entry.limits_to_leaves
    eta = entry.conversion_efficiency or 1.0

    def per_phase(side: LimitsReq, name: str) -> float | None:
        caps = side.ac_max_current_per_phase_A
        return None if caps is None else getattr(caps, name)

    phase_a = np.array([
        _lo(root.ac_max_current_A, leaves.ac_max_current_A, per_phase(root, p),
            per_phase(leaves, p))
        for p in ("L1", "L2", "L3")
    ])
    leaves_w = None if leaves.total_power_W is None else leaves.total_power_W / eta
    max_phases = _lo(root.ac_max_phase_count, leaves.ac_max_phase_count)
    return Caps(
        phase_a=phase_a,
        power_w=_lo(root.total_power_W, leaves_w),
        min_a=max(root.ac_min_current_A or 0.0, leaves.ac_min_current_A or 0.0),
        max_phases=3 if max_phases == np.inf else int(max_phases),
    )


def oracle_caps(request: EnergyFlowRequest, t: datetime, export: bool) -> Caps:
    entries = request.schedule_export if export else request.schedule_import
    if not entries:
        return Caps(np.zeros(3), 0.0, 0.0, 3)
    caps = _merged(_entry_at(entries, t))
    if request.schedule_setpoints:
        sp = _entry_at(request.schedule_setpoints, t).setpoint
        if sp is not None and sp.ac_current_A is not None:
            allowed = max(0.0, -sp.ac_current_A if export else sp.ac_current_A)
            caps.phase_a = np.minimum(caps.phase_a, allowed)
    return caps


@dataclass
class Flat:
    """The tree as the oracle sees it: every node with the EVSE positions below it."""

    nodes: list[EnergyFlowRequest]
    below: list[list[int]]
    evses: list[EnergyFlowRequest]
    paths: list[list[int]]  # node positions from the root to each EVSE (inclusive)


def flatten(root: EnergyFlowRequest) -> Flat:
    flat = Flat([], [], [], [])

    def walk(request: EnergyFlowRequest, path: list[int]) -> list[int]:
        k = len(flat.nodes)
        flat.nodes.append(request)
        flat.below.append([])
        if request.node_type == "Evse":
            flat.below[k] = [len(flat.evses)]
            flat.evses.append(request)
            flat.paths.append([*path, k])
        else:
            for child in request.children:
                flat.below[k] += walk(child, [*path, k])
        return flat.below[k]

    walk(root, [])
    return flat


def used_phases(request: EnergyFlowRequest, phases: int) -> list[int]:
    rotation = request.phase_rotation or "L1L2L3"
    return [GRID_PHASES[rotation[2 * i : 2 * i + 2]] for i in range(phases)]


def check_slot(
    root: EnergyFlowRequest,
    t: datetime,
    current_a: np.ndarray,
    phases: np.ndarray,
    capped: np.ndarray | None = None,
    *,
    maximal: bool = True,
    tol: float = TOL,
    live: dict[str, tuple[np.ndarray, float]] | None = None,
) -> None:
    """Assert the invariants for one slot; ``capped`` marks EVSEs held by a target.

    ``tol`` is the slack of the safety checks [A], [W] (rounded plans need a little);
    ``live`` adds caps per node uuid for this slot only (per-phase amperes, watts).
    """
    flat = flatten(root)
    n = len(flat.evses)
    imp = [oracle_caps(r, t, False) for r in flat.nodes]
    exp = [oracle_caps(r, t, True) for r in flat.nodes]
    # a node that allows no import at all turns a bidirectional EVSE below it to export (live
    # caps, e.g. what the grid meter leaves, do not: they are no request to discharge)
    closed = [c.power_w <= TOL or bool(np.all(c.phase_a <= TOL)) for c in imp]
    for k, request in enumerate(flat.nodes):  # live caps tighten a node in both directions
        if live and request.uuid in live:
            amps, watts = live[request.uuid]
            for caps in (imp[k], exp[k]):
                caps.phase_a = np.minimum(caps.phase_a, amps)
                caps.power_w = min(caps.power_w, watts)
    load_a = np.zeros((len(flat.nodes), 3))  # signed, per grid phase
    export_a = np.zeros((len(flat.nodes), 3))
    load_w = np.zeros(len(flat.nodes))
    export_w = np.zeros(len(flat.nodes))
    evse_pos = [path[-1] for path in flat.paths]
    for e in range(n):
        used = used_phases(flat.evses[e], int(phases[e]))
        for k in flat.paths[e]:
            for p in used:
                load_a[k, p] += current_a[e]
                export_a[k, p] += max(0.0, -current_a[e])
            load_w[k] += current_a[e] * len(used) * VOLT
            export_w[k] += max(0.0, -current_a[e]) * len(used) * VOLT

    def fmt(e: int) -> str:
        return f"EVSE {flat.evses[e].uuid} at {t}: {current_a[e]:.4f} A x {phases[e]}"

    # 1. safety
    for k in range(len(flat.nodes)):
        if flat.nodes[k].node_type == "Evse":
            continue
        assert np.all(load_a[k] <= imp[k].phase_a + tol), f"node {flat.nodes[k].uuid} A"
        assert load_w[k] <= imp[k].power_w + tol, f"node {flat.nodes[k].uuid} W"
        assert np.all(export_a[k] <= exp[k].phase_a + tol), f"node {flat.nodes[k].uuid} exp A"
        assert export_w[k] <= exp[k].power_w + tol, f"node {flat.nodes[k].uuid} exp W"
    for e in range(n):
        own = exp[evse_pos[e]] if current_a[e] < 0 else imp[evse_pos[e]]
        x = abs(current_a[e])
        assert x <= own.amps + tol, fmt(e)
        assert x * phases[e] * VOLT <= own.power_w + tol, fmt(e)
        path_max_phases = min(imp[k].max_phases for k in flat.paths[e])
        assert x <= TOL or 1 <= phases[e] <= max(path_max_phases, 1), fmt(e)

    # 2. all or nothing
    for e in range(n):
        x = current_a[e]
        if x > tol:
            minimum = max(imp[k].min_a for k in flat.paths[e])
        elif x < -tol:
            minimum = exp[evse_pos[e]].min_a
        else:
            continue
        assert abs(x) >= minimum - tol, f"{fmt(e)} below the minimum {minimum}"

    if not maximal:
        return

    # 3. no waste (import side; exporting EVSEs are checked on the export side)
    def tight(e: int, used: list[int], add_a: float, export: bool) -> bool:
        for k in flat.paths[e][:-1]:
            caps, la, lw = (exp[k], export_a[k], export_w[k]) if export else (
                imp[k], load_a[k], load_w[k])
            if any(la[p] + add_a > caps.phase_a[p] - TOL for p in used):
                return True
            if lw + add_a * len(used) * VOLT > caps.power_w - TOL:
                return True
        return False

    for e in range(n):
        if capped is not None and capped[e]:
            continue
        request = flat.evses[e]
        own_imp, own_exp = imp[evse_pos[e]], exp[evse_pos[e]]
        imp_open = own_imp.amps > TOL and own_imp.power_w > TOL and not any(
            closed[k] for k in flat.paths[e][:-1]
        )
        export = not imp_open and own_exp.amps > TOL and own_exp.power_w > TOL
        own = own_exp if export else own_imp
        x = abs(current_a[e])
        ph = int(phases[e])
        if x > TOL:
            top = min(own.amps, own.power_w / (ph * VOLT))
            if x < top - 1e-5:
                assert tight(e, used_phases(request, ph), 1e-5, export), (
                    f"{fmt(e)} below its max {top} with no tight node on its path"
                )
            continue
        if request.evse_state in IDLE_STATES or not (imp_open or export):
            continue
        minimum = own.min_a if export else max(imp[k].min_a for k in flat.paths[e])
        max_ph = min(imp[k].max_phases for k in flat.paths[e])
        min_ph = 1 if request.schedule_import and _switchable(request, t) else max_ph
        for trial in sorted({max(max_ph, 1), max(min(min_ph, max_ph), 1)}):
            top = min(own.amps, own.power_w / (trial * VOLT))
            if top <= TOL or top < minimum - TOL:
                continue  # its own caps leave no room for the minimum
            assert tight(e, used_phases(request, trial), max(minimum, MIN_ROOM_A), export), (
                f"{fmt(e)} idle although {minimum} A on {trial} phase(s) fits"
            )


def _switchable(request: EnergyFlowRequest, t: datetime) -> bool:
    entries = request.schedule_import
    min_phases = [
        e.limits_to_root.ac_min_phase_count or e.limits_to_leaves.ac_min_phase_count or 1
        for e in [_entry_at(entries, t)]
    ]
    return any(
        e.limits_to_root.ac_supports_changing_phases_during_charging for e in entries
    ) and min_phases[0] <= 1
