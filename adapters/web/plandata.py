"""The plan over the horizon as chart data: stacked power per EVSE, node caps per phase,
prices, departures and shortfalls (the browser draws it as an inline SVG)."""

from __future__ import annotations

from adapters.web.snapshot import finite, numbers
from energytree.plan import Plan
from energytree.planfigures import (
    binding_phase,
    departures,
    planned_phase_load_a,
    shortfalls,
    site_limit_w,
)

__all__ = ["MAX_PHASE_NODES", "plan_chart"]

MAX_PHASE_NODES = 8  # per-phase panels for the root and the first fuses below it


def _phase_panels(plan: Plan) -> list[dict[str, object]]:
    p = plan.problem
    load = planned_phase_load_a(plan)
    panels = []
    for node in [x for x in p.tree.nodes if not x.is_evse][:MAX_PHASE_NODES]:
        cap = p.imp[node.index].current_a  # [slot, phase]
        panels.append({
            "uuid": node.uuid,
            "load_a": numbers(load[node.index].T, 2),
            "limit_a": numbers(cap.T, 2),
            "binding_phase": [None if k < 0 else k
                              for k in binding_phase(cap, load[node.index]).tolist()],
        })
    return panels


def plan_chart(plan: Plan) -> dict[str, object]:
    """Everything the plan chart needs; times as epoch seconds (the page shows local time)."""
    p = plan.problem
    kw = plan.power_w.clip(min=0) / 1000.0
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
        "shortfalls": [{"uuid": uuid, "kwh": finite(kwh, 2), "at": at}
                       for at, uuid, kwh in shortfalls(plan)],
    }
