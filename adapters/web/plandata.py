"""The plan over the horizon as chart data: stacked power per EVSE, node caps per phase,
prices, departures and shortfalls (the browser draws it as an inline SVG)."""

from __future__ import annotations

import numpy as np

from adapters.web.snapshot import finite, numbers
from energytree.plan import Plan
from energytree.render import SHORTFALL_KWH, departures, site_limit_w

__all__ = ["MAX_PHASE_NODES", "plan_chart"]

MAX_PHASE_NODES = 8  # per-phase panels for the root and the first fuses below it


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


def _phase_panels(plan: Plan) -> list[dict[str, object]]:
    p = plan.problem
    load = planned_phase_load_a(plan)
    panels = []
    for node in [x for x in p.tree.nodes if not x.is_evse][:MAX_PHASE_NODES]:
        cap = p.imp[node.index].current_a  # [slot, phase]
        headroom = np.where(np.isfinite(cap), cap - load[node.index], np.inf)
        panels.append({
            "uuid": node.uuid,
            "load_a": [numbers(load[node.index][:, k], 2) for k in range(3)],
            "limit_a": [numbers(cap[:, k], 2) for k in range(3)],
            "binding_phase": [None if not np.isfinite(h).any() else int(np.argmin(h))
                              for h in headroom],
        })
    return panels


def plan_chart(plan: Plan) -> dict[str, object]:
    """Everything the plan chart needs; times as epoch seconds (the page shows local time)."""
    p = plan.problem
    kw = plan.power_w.clip(min=0) / 1000.0
    short = plan.shortfall_kwh()
    deadlines = plan.deadlines()
    return {
        "method": plan.method,
        "starts": [float(s) for s in p.grid.starts],
        "end": float(p.grid.ends[-1]),
        "evses": [{"uuid": node.uuid, "kw": numbers(kw[e]),
                   "kwh": finite(float((kw[e] * p.grid.hours).sum()))}
                  for e, node in enumerate(p.tree.evses)],
        "site_limit_kw": numbers(site_limit_w(plan) / 1000.0),
        "price": numbers(p.price_import, 4),
        "phases": _phase_panels(plan),
        "departures": [{"at": at, "uuids": uuids} for at, uuids in departures(plan)],
        "shortfalls": [{"uuid": node.uuid, "kwh": finite(float(short[e]), 2),
                        "at": float(p.grid.starts[min(int(deadlines[e]), p.slots - 1)])}
                       for e, node in enumerate(p.tree.evses) if short[e] >= SHORTFALL_KWH],
    }
