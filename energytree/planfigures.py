"""Figures of a plan for charts and pages: the site's limit, the load per node and phase, the
binding phase, energy delivered, departures and missed targets.

Pure functions of a ``Plan``, shared by the terminal preview, the PNG/SVG chart and the web
dashboard, so the three show the same numbers.
"""

from __future__ import annotations

import numpy as np

from energytree.plan import Plan

__all__ = ["SHORTFALL_KWH", "binding_phase", "delivered_kwh", "departures",
           "planned_phase_load_a", "shortfalls", "site_limit_w"]

SHORTFALL_KWH = 0.05  # less than this is rounding, not a missed target


def site_limit_w(plan: Plan) -> np.ndarray:
    """The root's import cap per slot [W]: its W cap or its A cap × phases × voltage (inf: none)."""
    p = plan.problem
    lim = p.imp[p.tree.root.index]
    amps = np.sort(lim.current_a, axis=1)  # a cap on fewer phases counts its smallest phases
    phases = np.arange(amps.shape[1])[None, :] < lim.max_phases[:, None]
    from_amps = np.where(phases, amps, 0.0).sum(axis=1) * p.voltage_v
    return np.minimum(lim.power_w, from_amps)


def planned_phase_load_a(plan: Plan) -> np.ndarray:
    """Planned import current per node, slot and grid phase [A], ``[node, slot, phase]``."""
    p = plan.problem
    n, t = plan.current_a.shape
    per_phase = np.zeros((n, t, 3))
    amps = plan.current_a.clip(min=0)
    rows, cols = np.arange(n)[:, None], np.arange(t)[None, :]
    for k in range(3):  # an EVSE's k-th phase lands on grid phase phase_map[e, k]
        per_phase[rows, cols, p.phase_map[:, k][:, None]] += amps * (plan.phases > k)
    prefix = np.concatenate([np.zeros((1, t, 3)), per_phase.cumsum(axis=0)])
    return np.stack([prefix[node.evse_hi] - prefix[node.evse_lo] for node in p.tree.nodes])


def binding_phase(cap_a: np.ndarray, load_a: np.ndarray) -> np.ndarray:
    """Per slot, the grid phase with the least headroom under its cap (-1: no current cap).

    ``cap_a`` and ``load_a`` are ``[slot, phase]`` [A].
    """
    finite = np.isfinite(cap_a)
    headroom = np.where(finite, cap_a - load_a, np.inf)
    return np.where(finite.any(axis=1), headroom.argmin(axis=1), -1)


def shortfalls(plan: Plan) -> list[tuple[float, str, float]]:
    """Targets missed at leave time: (leave time or horizon end [epoch s], uuid, kWh short)."""
    p = plan.problem
    short, deadlines = plan.shortfall_kwh(), plan.deadlines()
    ends = np.append(p.grid.starts, p.grid.ends[-1])
    return [(float(ends[min(int(deadlines[e]), p.slots)]), node.uuid, float(short[e]))
            for e, node in enumerate(p.tree.evses) if short[e] >= SHORTFALL_KWH]


def delivered_kwh(plan: Plan) -> np.ndarray:
    """Energy into each car at every slot boundary [kWh], ``[evse, slot + 1]``, from 0."""
    p = plan.problem
    per_slot = plan.power_w * p.grid.hours * p.efficiency / 1000.0
    return np.concatenate([np.zeros((p.evse_count, 1)), per_slot.cumsum(axis=1)], axis=1)


def departures(plan: Plan) -> list[tuple[float, list[str]]]:
    """Leave times inside the horizon (epoch seconds), earliest first, with who leaves then."""
    p = plan.problem
    found: dict[float, list[str]] = {}
    for e, t in enumerate(p.targets):
        if t is not None and 0 < t.deadline_slot < p.slots:
            found.setdefault(float(p.grid.starts[t.deadline_slot]), []).append(
                p.tree.evses[e].uuid)
    return sorted(found.items())
