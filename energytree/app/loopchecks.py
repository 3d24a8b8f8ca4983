"""Checks of a closed-loop record: overloads, oscillations, targets promised and missed.

Each returns readable findings (an empty list when all is well), so a test asserts ``== []``
and a failure says where and when; the benchmark counts them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from energytree.app.closedloop import Record
from energytree.site import EvseConfig, FuseConfig, GridConfig, SiteConfig, evse_configs

__all__ = [
    "NodeLimit",
    "TargetOutcome",
    "missed_targets",
    "node_limits",
    "oscillations",
    "overloads",
    "target_outcomes",
]

TOLERANCE_A = 0.05  # rounding in the published limits
REACHABLE_KWH = 0.05  # a plan's shortfall below this calls the target reachable


@dataclass(frozen=True)
class NodeLimit:
    """One node's limits and the EVSEs below it; the root's meter sees the household too."""

    uuid: str
    evses: tuple[int, ...]
    current_a: float
    power_w: float
    household: bool



def node_limits(site: SiteConfig) -> list[NodeLimit]:
    """Every node with numeric limits (the root, fuses, EVSEs) and the EVSEs below it."""
    uuids = [e.evse for e in evse_configs(site)]
    found: list[NodeLimit] = []

    def number(value: object) -> float:
        return float(value) if isinstance(value, float | int) else np.inf

    def below(node: GridConfig | FuseConfig | EvseConfig) -> tuple[int, ...]:
        if isinstance(node, EvseConfig):
            return (uuids.index(node.evse),)
        return tuple(i for child in node.children for i in below(child))

    def walk(node: GridConfig | FuseConfig | EvseConfig, uuid: str, root: bool) -> None:
        found.append(NodeLimit(uuid, below(node), number(node.max_current_A),
                               number(node.max_power_W), root))
        for child in getattr(node, "children", []):
            walk(child, child.evse if isinstance(child, EvseConfig) else child.fuse, False)

    walk(site.grid, site.grid.uuid, True)
    return found


def overloads(record: Record) -> list[str]:
    """Ticks where a node carried more than its limit, outside the grace after a disturbance."""
    scenario = record.scenario
    t, draw, household = record.arrays()
    graced = t - np.array(record.disturbed_s) <= scenario.grace_s
    volts = scenario.site.nominal_voltage_V
    found = []
    for node in node_limits(scenario.site):
        amps = draw[:, list(node.evses), :].sum(axis=1)
        watts = amps.sum(axis=1) * volts
        if node.household:
            amps = amps + household
        over = ((amps.max(axis=1) > node.current_a + TOLERANCE_A)
                | (watts > node.power_w + TOLERANCE_A * volts)) & ~graced
        found += [f"t={t[i]:.0f} s: {node.uuid} carries {np.round(amps[i], 2).tolist()} A, "
                  f"{watts[i]:.0f} W (limit {node.current_a:g} A, {node.power_w:g} W)"
                  f"{_drawing(record, draw[i], node.evses)}"
                  for i in np.nonzero(over)[0][:5]]
    ev_w = draw.sum(axis=(1, 2)) * volts
    over = (ev_w > np.array(record.dimming_w) + TOLERANCE_A * volts) & ~graced
    found += [f"t={t[i]:.0f} s: the EVSEs draw {ev_w[i]:.0f} W under an operator limit of "
              f"{record.dimming_w[i]:.0f} W" for i in np.nonzero(over)[0][:5]]
    return found


def _drawing(record: Record, draw: np.ndarray, evses: tuple[int, ...]) -> str:
    """Who draws what on which grid phase, e.g. ``: e1 [15.9, 15.9, 15.9], e2 [0, 0, 12]``."""
    parts = [f"{record.uuids[e]} {np.round(draw[e], 1).tolist()}" for e in evses
             if draw[e].any()]
    return f": {', '.join(parts)}" if parts else ""


def oscillations(record: Record, window_s: float = 60.0, min_step_a: float = 1.0,
                 max_reversals: int = 2) -> list[str]:
    """EVSEs whose limit swings up and down while nothing changes around them.

    A quiet stretch starts ``grace_s`` after the last event of any kind (an arrival, a plan, a
    household step, a command); within ``window_s`` of it an EVSE's granted current may turn
    direction (by at least ``min_step_a``) at most ``max_reversals`` times.
    """
    t = np.array(record.t_s)
    granted = np.array(record.granted_a).reshape(len(t), -1)
    quiet = t - np.array(record.event_s) > record.scenario.grace_s
    found = []
    for start, stop in _stretches(quiet):
        times = t[start:stop]
        for e, uuid in enumerate(record.uuids):
            turns = _reversal_times(times, granted[start:stop, e], min_step_a)
            for i in range(len(turns) - max_reversals):
                if turns[i + max_reversals] - turns[i] <= window_s:
                    found.append(f"{uuid}: limit turned {max_reversals + 1} times between "
                                 f"t={turns[i]:.0f} s and t={turns[i + max_reversals]:.0f} s")
                    break
    return found


def _stretches(mask: np.ndarray) -> Iterator[tuple[int, int]]:
    """(start, stop) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    yield from zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0], strict=True)


def _reversal_times(times: np.ndarray, values: np.ndarray, min_step: float) -> list[float]:
    """When a series turns direction, counting only steps of at least ``min_step``."""
    steps = np.diff(values)
    big = np.abs(steps) >= min_step
    signs, at = np.sign(steps[big]), times[1:][big]
    return [float(at[i]) for i in range(1, len(signs)) if signs[i] != signs[i - 1]]


@dataclass(frozen=True)
class TargetOutcome:
    """How one session's target went: the last plan's promise, the energy needed and taken."""

    session: int
    promised: bool  # a plan at least ``promise_s`` before the leave time called it reachable
    at_s: float  # when that plan was made
    needed_kwh: float  # what the car still needed then
    got_kwh: float  # what it took from then until it left
    met: bool  # took what it needed, less a small slack for whole slots and amperes


def target_outcomes(record: Record, promise_s: float = 900.0, slack_kwh: float = 0.3,
                    slack_share: float = 0.03) -> list[TargetOutcome]:
    """Every session with a target that left in the run, judged on the last plan made at
    least ``promise_s`` before its leave time (a plan cannot promise what it has no time for)."""
    found = []
    for index, verdicts in sorted(record.verdicts.items()):
        session = record.scenario.sessions[index]
        made = [v for v in verdicts if v[0] <= session.leave_s - promise_s]
        if not made or index not in record.final_soc or session.goal_soc is None:
            continue
        at, shortfall, soc = made[-1]
        battery = session.car.battery_kwh
        needed = max(0.0, session.goal_soc - soc) * battery / 100.0
        got = (record.final_soc[index] - soc) * battery / 100.0
        found.append(TargetOutcome(index, shortfall <= REACHABLE_KWH, at, needed, got,
                                   got >= needed - slack_kwh - slack_share * needed))
    return found


def missed_targets(record: Record) -> list[str]:
    """Targets a plan called reachable and the car did not get (see ``target_outcomes``)."""
    sessions = record.scenario.sessions
    return [f"{sessions[o.session].evse}: plan at t={o.at_s:.0f} s promised {o.needed_kwh:.2f} "
            f"kWh by t={sessions[o.session].leave_s:.0f} s; the car took {o.got_kwh:.2f} kWh"
            for o in target_outcomes(record) if o.promised and not o.met]
