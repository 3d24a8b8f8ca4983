"""The dashboard's data: per-phase node loads and limits, the plan chart, metric helpers."""

from __future__ import annotations

import json

import numpy as np

from adapters.web.metrics import plan_gap
from adapters.web.plandata import plan_chart
from adapters.web.snapshot import finite, node_rows
from energytree.plan import instant_plan
from energytree.planfigures import planned_phase_load_a
from energytree.status import EvseStatus
from tests.builders import NOW, at, evse, node, problem


def tree():
    """A 1-phase EVSE wired to L2 and a 3-phase one below a fuse with caps per phase."""
    return node("grid",
                node("fuse", evse("one", phases=1, rotation="L2L3L1"), evse("three"),
                     per_phase=[32, 18, 32]),
                max_a=40, power_w=20_000)


def status(uuid: str, amps: float, phases: int) -> EvseStatus:
    return EvseStatus(uuid, "Charging", amps, phases, amps * phases * 230.0, "test", None,
                      0.0, 0.0)


def test_node_rows_add_each_phase_and_mark_the_binding_one() -> None:
    rows = {r["uuid"]: r for r in node_rows(
        problem(tree()), {"one": status("one", 10, 1), "three": status("three", 6, 3)}, NOW)}
    fuse = rows["fuse"]
    assert fuse["current_a"] == [6.0, 16.0, 6.0]
    assert fuse["limit_a"] == [32.0, 18.0, 32.0]
    assert (fuse["binding_phase"], fuse["headroom_a"][1]) == (1, 2.0)
    assert rows["grid"]["power_w"] == (10 + 18) * 230.0
    assert rows["grid"]["limit_w"] == 20_000.0
    assert rows["one"]["current_a"] == [0.0, 10.0, 0.0]


def test_node_rows_without_current_caps_bind_nothing() -> None:
    rows = node_rows(problem(node("grid", evse("a", max_a=None), power_w=11_000)), {}, NOW)
    assert [r["binding_phase"] for r in rows] == [None, None]
    assert rows[0]["limit_a"] == [None, None, None]  # inf is "no limit", not a number
    assert rows[0]["limit_w"] == 11_000.0


def test_plan_chart_stacks_every_evse_and_is_strict_json() -> None:
    request = node("grid", evse("a", target={"energy_amount_needed": 50,
                                             "leave_time": at(60).isoformat()}),
                   evse("b", phases=1, rotation="L3L1L2"), max_a=20)
    plan = instant_plan(problem(request, horizon_hours=3))
    chart = plan_chart(plan)
    json.dumps(chart, allow_nan=False)
    assert [e["uuid"] for e in chart["evses"]] == ["a", "b"]
    assert len(chart["starts"]) == len(chart["evses"][0]["kw"]) == plan.problem.slots
    assert chart["departures"] == [{"at": at(60).timestamp(), "uuids": ["a"]}]
    [short] = chart["shortfalls"]  # 50 kWh do not fit in one hour at 20 A
    assert short["uuid"] == "a" and short["kwh"] > 30
    assert chart["phases"][0]["uuid"] == "grid"


def test_planned_phase_loads_follow_the_wiring() -> None:
    request = node("grid", evse("a", phases=1, rotation="L3L1L2"), evse("b"), max_a=40)
    plan = instant_plan(problem(request))
    load = planned_phase_load_a(plan)
    a, b = plan.current_a[0], plan.current_a[1]
    np.testing.assert_allclose(load[0, :, 2], a + b)  # the root: a on L3 only, b on all
    np.testing.assert_allclose(load[0, :, 0], b)
    np.testing.assert_allclose(load[1, :, 2], a)  # the EVSE itself


def test_finite_turns_inf_and_nan_into_none() -> None:
    assert [finite(float("inf")), finite(float("nan")), finite(1.23456, 2)] == [None, None, 1.23]


def test_plan_gap_reads_the_optimiser_note() -> None:
    notes = ["x", "optimiser (highs): LP bound 1.0, plan 1.1, gap 0.5000 %, 0 fractional"]
    assert plan_gap(notes) == 0.005
    assert plan_gap(["instant allocator"]) is None
