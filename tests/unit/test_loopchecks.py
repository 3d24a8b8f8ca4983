"""The closed-loop checks catch what they claim to, on records built by hand."""

from __future__ import annotations

import numpy as np
import pytest

from energytree.app.closedloop import (
    Record,
    Scenario,
    Session,
)
from energytree.app.loopchecks import (
    missed_targets,
    node_limits,
    oscillations,
    overloads,
    target_outcomes,
)
from energytree.app.simulation import Household, SimulatedCar
from energytree.site import SiteConfig

SITE = SiteConfig.model_validate({"grid": {"uuid": "grid", "max_current_A": 32, "children": [
    {"evse": "a", "max_current_A": 16},
    {"fuse": "sub", "max_current_A": 20, "max_power_W": 9000, "children": [
        {"evse": "b", "max_current_A": 32}]}]}})


def record(draws: list[list[tuple[float, float, float]]], *, granted: list[list[float]] | None
           = None, events: list[float] | None = None, household: float = 0.0,
           sessions: list[Session] | None = None) -> Record:
    """Ticks one second apart; ``draws[t][evse]`` per grid phase; events at the given times."""
    scenario = Scenario(SITE, hours=1.0, sessions=sessions or [], household=Household(0.0))
    rec = Record(scenario, ["a", "b"])
    last = -np.inf
    for t, draw in enumerate(draws):
        last = max([e for e in (events or []) if e <= t], default=last)
        rec.t_s.append(float(t))
        rec.evse_grid_a.append(np.array(draw))
        rec.household_a.append((household,) * 3)
        rec.granted_a.append(np.array(granted[t] if granted else [0.0, 0.0]))
        rec.dimming_w.append(np.inf)
        rec.disturbed_s.append(last)
        rec.event_s.append(last)
    return rec


def test_node_limits_follow_the_tree() -> None:
    nodes = {n.uuid: n for n in node_limits(SITE)}
    assert nodes["grid"].evses == (0, 1) and nodes["grid"].household
    assert nodes["sub"].evses == (1,) and (nodes["sub"].current_a, nodes["sub"].power_w) == (
        20.0, 9000.0)
    assert nodes["a"].current_a == 16.0 and not nodes["a"].household


def test_an_overload_is_found_unless_within_the_grace_of_a_disturbance() -> None:
    idle = [(0.0, 0.0, 0.0), (0.0, 0.0, 0.0)]
    over = [(0.0, 0.0, 0.0), (21.0, 0.0, 0.0)]  # the fuse "sub" carries 21 A > 20 A
    [finding] = overloads(record([idle] * 10 + [over]))
    assert finding.startswith("t=10 s: sub carries [21.0, 0.0, 0.0] A")
    assert overloads(record([idle] * 10 + [over], events=[8.0])) == []  # grace: 3 s here


def test_the_household_counts_at_the_root_only() -> None:
    draw = [(16.0, 16.0, 16.0), (0.0, 0.0, 0.0)]
    assert overloads(record([draw] * 3, household=15.0)) == []
    assert "grid carries [33.0, 33.0, 33.0] A" in overloads(record([draw], household=17.0))[0]


def test_a_swinging_limit_is_an_oscillation_and_a_settling_one_is_not() -> None:
    idle = [[(0.0, 0.0, 0.0), (0.0, 0.0, 0.0)]] * 40
    swing = [[21.0 if (t // 6) % 2 else 0.0, 10.0] for t in range(40)]
    [finding] = oscillations(record(idle, granted=swing))
    assert finding.startswith("a: limit turned 3 times")
    settle = [[min(21.0, 3.0 * t), 10.0] for t in range(40)]
    assert oscillations(record(idle, granted=settle)) == []
    assert oscillations(record(idle, granted=swing, events=[float(t) for t in range(40)])) == []


@pytest.mark.parametrize(("final_soc", "met"), [(60.0, True), (50.0, False)])
def test_a_promised_target_is_judged_on_what_the_car_took(final_soc: float, met: bool) -> None:
    session = Session("a", 0, 7200, SimulatedCar(battery_kwh=40.0), goal_soc=60.0)
    rec = record([], sessions=[session])
    rec.verdicts[0] = [(0.0, 0.0, 30.0), (6900.0, 5.0, 58.0)]  # the late plan does not count
    rec.final_soc[0] = final_soc
    [outcome] = target_outcomes(rec)
    assert outcome.promised and outcome.needed_kwh == pytest.approx(12.0)
    assert outcome.met is met
    assert (missed_targets(rec) == []) is met
