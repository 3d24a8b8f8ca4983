"""Invariants of the instant allocator over random trees, checked by ``tests.oracle``.

Random trees: depth ≤ 4, up to 50 EVSEs, caps per phase and in watts on any node, schedules of
several entries (future first entries, duplicate timestamps), phase rotations, one or three
phases, switchable or not, some bidirectional EVSEs told to export by a setpoint, some
EVSEs unplugged or with an empty schedule. Every slot is checked for safety, all-or-nothing
and no waste (see ``tests/oracle.py``).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from energytree.allocator import LiveCap, allocate_slot
from energytree.plan import instant_plan
from energytree.types import EnergyFlowRequest
from tests.builders import NOW, evse, node, problem
from tests.oracle import check_slot

OFFSETS_MIN = st.sampled_from([-30, 0, 0, 7, 15, 20, 45, 45, 60, 90])
MAX_EVSES = 50
LIVE_AMPS = st.sampled_from([0.0, 3.0, 8.0, 16.0, 40.0, np.inf])


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
@given(trees(), st.integers(0, 200), st.data())
def test_allocate_slot_with_live_caps_invariants(
    data: dict, rotation: int, draws: st.DataObject
) -> None:
    request = EnergyFlowRequest.model_validate(data)
    prob = problem(request, horizon_hours=1)
    nodes = draws.draw(st.lists(st.sampled_from(prob.inner), max_size=2,
                                unique_by=lambda n: n.index))
    live, caps = [], {}
    for picked in nodes:
        amps = np.array(draws.draw(st.lists(LIVE_AMPS, min_size=3, max_size=3)))
        watts = draws.draw(st.sampled_from([0.0, 2000.0, 9000.0, np.inf]))
        live.append(LiveCap(picked.index, amps, watts, "grid meter"))
        caps[picked.uuid] = (amps, watts)
    for slot in range(prob.slots):
        result = allocate_slot(prob, slot, rotation=rotation, live_caps=live)
        check_slot(request, prob.grid.start_time(slot), result.current_a, result.phases,
                   live=caps)


@SETTINGS
@given(trees(), st.integers(0, 200), st.data())
def test_allocate_slot_with_caller_caps_and_phases_is_safe(
    data: dict, rotation: int, draws: st.DataObject
) -> None:
    """The realtime path: a planned cap per EVSE and phase counts chosen by the caller."""
    request = EnergyFlowRequest.model_validate(data)
    prob = problem(request, horizon_hours=1)
    n = prob.evse_count
    caps = np.array(draws.draw(st.lists(st.sampled_from([0.0, 5.0, 6.0, 10.0, np.inf]),
                                        min_size=n, max_size=n)))
    phases = np.array(draws.draw(st.lists(st.sampled_from([1, 2, 3]), min_size=n, max_size=n)))
    for slot in range(prob.slots):
        result = allocate_slot(prob, slot, rotation=rotation, evse_cap_a=caps,
                               evse_cap_label="plan", phases=phases)
        check_slot(request, prob.grid.start_time(slot), result.current_a, result.phases,
                   maximal=False)
        assert np.all(np.abs(result.current_a) <= caps + 1e-9)


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


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 20), st.floats(6.0, 200.0), st.sampled_from([1, 3]), st.integers(0, 50))
def test_rotation_lets_everybody_charge_within_n_counters(
    n: int, fuse_a: float, phases: int, start: int
) -> None:
    """N equal EVSEs short of N × 6 A: over N consecutive counters each one charges."""
    children = [
        evse(f"e{i}", 16, 6, phases, rotation="L1L2L3" if phases == 3 else "L2L3L1")
        for i in range(n)
    ]
    prob = problem(node("grid", *children, max_a=fuse_a))
    charged = np.zeros(n, dtype=bool)
    for counter in range(start, start + n):
        result = allocate_slot(prob, 0, rotation=counter)
        assert np.count_nonzero(result.current_a) == min(n, int(fuse_a // 6 + 1e-9))
        charged |= result.current_a > 0
    assert charged.all()
