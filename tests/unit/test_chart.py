"""The preview figure and the per-feeder summary: what the page taught the preview."""

from __future__ import annotations

from itertools import pairwise
from zoneinfo import ZoneInfo

import numpy as np
from matplotlib import colormaps

from energytree.app.chart import PALETTE, build_figure
from energytree.app.render import View, render_feeders
from energytree.plan import instant_plan
from energytree.planfigures import binding_phase, shortfalls
from tests.builders import at, evse, node, problem

BERLIN = ZoneInfo("Europe/Berlin")


def short_plan():
    """Two feeders; 'a' wants 60 kWh within an hour (it cannot) and L2 carries a 1-phase car."""
    request = node(
        "grid",
        node("f1", evse("a", target={"energy_amount_needed": 60,
                                     "leave_time": at(60).isoformat()})),
        node("f2", evse("b", phases=1, rotation="L2L3L1"), evse("c")),
        max_a=32)
    return instant_plan(problem(request, horizon_hours=4))


def texts(figure) -> list[str]:
    return [t.get_text() for ax in figure.axes for t in ax.texts]


def test_figure_marks_shortfalls_and_shows_phases_against_limits() -> None:
    plan = short_plan()
    [(seconds, uuid, kwh)] = shortfalls(plan)
    assert (uuid, seconds) == ("a", at(60).timestamp()) and kwh > 40
    figure = build_figure(plan, View(tz=BERLIN, title="test"))
    power, phases = figure.axes[0], figure.axes[-1]
    assert any(t.startswith("a short ") for t in texts(figure))
    labels = [line.get_label() for line in phases.get_lines()]
    assert {"L1 planned", "L2 planned", "L3 planned", "L1 limit"} <= set(labels)
    assert "2026" in phases.get_xlabel() and "Europe/Berlin" in phases.get_xlabel()
    assert power.get_title().startswith("test: 3 EVSEs")


def test_binding_phase_is_the_one_with_least_headroom() -> None:
    cap = np.array([[32.0, 32.0, 32.0], [np.inf, np.inf, np.inf], [10.0, 40.0, np.inf]])
    load = np.array([[10.0, 30.0, 10.0], [5.0, 5.0, 5.0], [9.0, 20.0, 50.0]])
    assert binding_phase(cap, load).tolist() == [1, -1, 0]


def test_neighbouring_colours_are_not_a_light_dark_pair() -> None:
    """tab20 comes in pairs of one hue; stacked neighbours must not look related."""
    pair = {colour: k // 2 for k, colour in enumerate(colormaps["tab20"].colors)}
    assert len(set(PALETTE)) == len(PALETTE)
    assert all(pair[a] != pair[b] for a, b in pairwise(PALETTE))


def test_feeder_summary_adds_up_to_the_plan() -> None:
    plan = short_plan()
    lines = render_feeders(plan)
    assert [line.split()[0] for line in lines] == ["feeder", "f1", "f2"]
    assert lines[1].split()[1] == "1" and lines[2].split()[1] == "2"
    planned = sum(float(line.split()[2]) for line in lines[1:])
    assert abs(planned - float(plan.energy_kwh().sum())) < 0.2
    assert "short" in lines[0] and float(lines[1].split()[4]) > 40


def test_no_feeders_no_summary() -> None:
    plan = instant_plan(problem(node("grid", evse("a"), max_a=32)))
    assert render_feeders(plan) == []
