"""Invariants of the instant allocator over random trees, checked against an independent oracle.

The oracle below reads the limits straight from the request JSON (entry selection, root/leaves
merge, setpoints) and recomputes every sum itself; it shares no code with ``energytree``'s
schedule, problem or allocator modules. Checked in every slot and phase:

1. safety: per node and grid phase, Σ signed current of the EVSEs below that use the phase
   ≤ import cap (export below a node nets against import), Σ export ≤ export cap, the same
   for watts, and every EVSE within its own caps;
2. all-or-nothing: every EVSE gets 0 or at least its minimum current;
3. no waste: an EVSE that charges below its maximum has a tight node on its path (on a phase it
   uses, or on power); an idle EVSE that wants power cannot fit its minimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from energytree.allocator import MIN_ROOM_A, allocate_slot
from energytree.plan import instant_plan
from energytree.types import EnergyFlowRequest, LimitsReq, ScheduleReqEntry
from tests.builders import NOW, problem

VOLT = 230.0
TOL = 1e-6
GRID_PHASES = {"L1": 0, "L2": 1, "L3": 2}
IDLE_STATES = {"Unplugged", "Finished", "Disabled", "WaitForAuth"}
OFFSETS_MIN = st.sampled_from([-30, 0, 0, 7, 15, 20, 45, 45, 60, 90])
MAX_EVSES = 50


# ---------------------------------------------------------------- random trees


def _maybe(strategy: st.SearchStrategy, p_none: int = 1) -> st.SearchStrategy:
    return st.one_of(*[st.none()] * p_none, strategy)


@st.composite
def limits_req(draw: st.DrawFn, evse: bool, phases: int = 3) -> dict:
    amps = st.sampled_from([0.0, 4.0, 6.0, 10.0, 13.0, 16.0, 20.0, 25.0, 32.0, 40.0, 63.0])
    out: dict = {
        # an EVSE always has a finite cap, or build_problem rejects the request
        "ac_max_current_A": draw(amps if evse else _maybe(amps)),
        "total_power_W": draw(_maybe(st.sampled_from([0.0, 1400.0, 4140.0, 7000.0, 11000.0,
                                                      22000.0, 50000.0]), 2)),
    }
    if evse:
        out["ac_min_current_A"] = draw(st.sampled_from([0.0, 6.0, 6.0, 8.0]))
    elif draw(st.booleans()):
        out["ac_max_current_per_phase_A"] = {
            name: draw(_maybe(st.sampled_from([0.0, 6.0, 10.0, 16.0, 25.0, 32.0])))
            for name in ("L1", "L2", "L3")
        }
    return out


@st.composite
def schedule(draw: st.DrawFn, evse: bool, extra: dict | None = None) -> list[dict]:
    entries = []
    for offset in draw(st.lists(OFFSETS_MIN, min_size=1, max_size=3)):
        root = draw(limits_req(evse)) | (extra or {})
        entry = {
            "timestamp": (NOW + timedelta(minutes=offset)).isoformat(),
            "limits_to_root": root,
            "limits_to_leaves": draw(limits_req(evse=False)) if draw(st.booleans()) else {},
        }
        if draw(st.booleans()):
            entry["conversion_efficiency"] = draw(st.sampled_from([0.9, 0.95, 1.0]))
        entries.append(entry)
    return entries


@st.composite
def evse_request(draw: st.DrawFn, uuid: str, with_targets: bool) -> dict:
    phases = draw(st.sampled_from([1, 3, 3]))
    switchable = phases == 3 and draw(st.booleans())
    extra = {
        "ac_max_phase_count": phases,
        "ac_min_phase_count": 1 if switchable else phases,
        "ac_supports_changing_phases_during_charging": switchable,
    }
    request = {
        "uuid": uuid,
        "node_type": "Evse",
        "schedule_import": draw(schedule(evse=True, extra=extra)),
        "evse_state": draw(st.sampled_from(["Charging"] * 6 + ["Unplugged", "PausedEV"])),
        "phase_rotation": draw(st.sampled_from(["L1L2L3", "L2L3L1", "L3L1L2", "L1L3L2"])),
    }
    if draw(st.integers(0, 9)) == 0:
        request["schedule_import"] = []
    if draw(st.integers(0, 4)) == 0:  # a bidirectional EVSE, told to export by a setpoint
        request["schedule_export"] = draw(schedule(evse=True, extra=extra))
        amps = draw(st.sampled_from([-16.0, -10.0, -6.0, 8.0]))
        when = NOW + timedelta(minutes=draw(OFFSETS_MIN))
        request["schedule_setpoints"] = [
            {"timestamp": when.isoformat(), "setpoint": {"ac_current_A": amps}}
        ]
    if with_targets and draw(st.integers(0, 2)) == 0:
        request["optimizer_target"] = {
            "energy_amount_needed": draw(st.sampled_from([0.0, 1.0, 3.0, 10.0])),
        }
    return request


@st.composite
def trees(draw: st.DrawFn, with_targets: bool = False) -> dict:
    count = [0]

    def subtree(depth: int, name: str) -> dict:
        children = []
        for i in range(draw(st.integers(1 if depth == 0 else 0, 5))):
            if count[0] >= MAX_EVSES:
                break
            if depth < 3 and draw(st.integers(0, 2)) == 0:
                children.append(subtree(depth + 1, f"{name}.{i}"))
            else:
                count[0] += 1
                children.append(draw(evse_request(f"{name}.e{i}", with_targets)))
        request = {
            "uuid": name,
            "node_type": "Generic",
            "children": children,
            "schedule_import": draw(schedule(evse=False)),
        }
        if draw(st.integers(0, 14)) == 0:
            request["schedule_import"] = []
        if draw(st.booleans()):
            request["schedule_export"] = draw(schedule(evse=False))
        return request

    root = subtree(0, "n")
    if count[0] == 0:
        root["children"].append(draw(evse_request("n.only", with_targets)))
    return root


# ---------------------------------------------------------------- the oracle


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
) -> None:
    """Assert the three invariants for one slot; ``capped`` marks EVSEs held by a target."""
    flat = flatten(root)
    n = len(flat.evses)
    imp = [oracle_caps(r, t, False) for r in flat.nodes]
    exp = [oracle_caps(r, t, True) for r in flat.nodes]
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
        assert np.all(load_a[k] <= imp[k].phase_a + TOL), f"node {flat.nodes[k].uuid} A"
        assert load_w[k] <= imp[k].power_w + TOL, f"node {flat.nodes[k].uuid} W"
        assert np.all(export_a[k] <= exp[k].phase_a + TOL), f"node {flat.nodes[k].uuid} exp A"
        assert export_w[k] <= exp[k].power_w + TOL, f"node {flat.nodes[k].uuid} exp W"
    for e in range(n):
        own = exp[evse_pos[e]] if current_a[e] < 0 else imp[evse_pos[e]]
        x = abs(current_a[e])
        assert x <= own.amps + TOL, fmt(e)
        assert x * phases[e] * VOLT <= own.power_w + TOL, fmt(e)
        path_max_phases = min(imp[k].max_phases for k in flat.paths[e])
        assert x <= TOL or 1 <= phases[e] <= max(path_max_phases, 1), fmt(e)

    # 2. all or nothing
    for e in range(n):
        x = current_a[e]
        if x > TOL:
            minimum = max(imp[k].min_a for k in flat.paths[e])
        elif x < -TOL:
            minimum = exp[evse_pos[e]].min_a
        else:
            continue
        assert abs(x) >= minimum - TOL, f"{fmt(e)} below the minimum {minimum}"

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
        imp_open = own_imp.amps > TOL and own_imp.power_w > TOL
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


# ---------------------------------------------------------------- the properties

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])


@SETTINGS
@given(trees(), st.integers(0, 200))
def test_allocate_slot_invariants(data: dict, rotation: int) -> None:
    request = EnergyFlowRequest.model_validate(data)
    prob = problem(request, horizon_hours=2)
    for slot in range(prob.slots):
        result = allocate_slot(prob, slot, rotation=rotation)
        check_slot(request, prob.grid.start_time(slot), result.current_a, result.phases)
        assert all(result.reasons), "every EVSE's result names its source"


@SETTINGS
@given(trees(with_targets=True), st.integers(0, 200))
def test_instant_plan_invariants(data: dict, rotation: int) -> None:
    request = EnergyFlowRequest.model_validate(data)
    prob = problem(request, horizon_hours=2)
    plan = instant_plan(prob, rotation=rotation)
    has_target = np.array([t is not None for t in prob.targets])
    for slot in range(prob.slots):
        check_slot(request, prob.grid.start_time(slot), plan.current_a[:, slot],
                   plan.phases[:, slot], capped=has_target)
