"""The live site as plain JSON-ready data: what the page shows and ``/metrics`` exports.

Everything is read through the manager's public status and getters, once per refresh, so the
page, the live feed and the metrics agree. Infinite caps ("no limit") become ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import lru_cache

import numpy as np

from energytree.manager import EnergyManager
from energytree.problem import ExternalSource, Problem, phase_usage
from energytree.schedule import value_at
from energytree.status import EvseStatus, SourceStatus, Status
from energytree.types import (
    ExternalLimits,
    OptimizerTarget,
    PhaseValues,
    Powermeter,
    format_timestamp,
)
from energytree.variables import VariableView

__all__ = ["PHASE_NAMES", "SiteFeed", "finite", "live_snapshot", "node_rows", "numbers"]

PHASE_NAMES = ("L1", "L2", "L3")
DRAW_A = 0.5  # a measured phase carrying more than this counts as in use [A]


@dataclass(frozen=True)
class SiteFeed:
    """What the dashboard reads from the running service (callables: always the latest)."""

    name: str
    zone: tzinfo
    manager: EnergyManager
    variables: Callable[[], list[VariableView]]
    connections: Callable[[], Mapping[str, bool]]
    formula_sources: Callable[[datetime], Sequence[ExternalSource]] = lambda _now: ()


def finite(value: float | None, digits: int = 3) -> float | None:
    """A number for JSON: rounded, and None for "no limit" (inf) or unknown (NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


@lru_cache(maxsize=4096)  # the same leave times come back every refresh
def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def _phases(values: PhaseValues | None) -> list[float | None]:
    if values is None:
        return [None, None, None]
    return [finite(getattr(values, name)) for name in PHASE_NAMES]


def _target(target: OptimizerTarget | None) -> dict[str, object] | None:
    if target is None:
        return None
    return {"energy_kwh": target.energy_amount_needed, "soc_percent": target.charge_to_max_percent,
            "leave_time": _stamp(target.leave_time)}


def _measured(meter: Powermeter | None) -> dict[str, object]:
    """Measured draw per phase [A], how many phases draw, and power [W]."""
    if meter is None:
        return {"current_a": [None, None, None], "power_w": None, "phases": None}
    amps = _phases(meter.current_A)
    used = sum(1 for a in amps if a is not None and abs(a) > DRAW_A)
    power = meter.power_W.total if meter.power_W else None
    return {"current_a": amps, "power_w": finite(power),
            "phases": used if meter.current_A else None}


def _evse(evse: EvseStatus, meter: Powermeter | None) -> dict[str, object]:
    """One EVSE's card; measured fields of the status, where it has them, win over the meter."""
    measured = _measured(meter)
    for name in ("measured_current_a", "measured_phases"):  # newer status fields, if present
        value = getattr(evse, name, None)
        if value is not None:
            measured[name.removeprefix("measured_")] = (
                [finite(a) for a in value] if isinstance(value, tuple | list) else value)
    return {
        "uuid": evse.uuid, "state": evse.state, "current_a": finite(evse.current_a, 2),
        "phases": evse.phases, "power_w": finite(evse.power_w, 1), "reason": evse.reason,
        "target": _target(evse.target), "planned_kwh": finite(evse.planned_kwh),
        "shortfall_kwh": finite(evse.shortfall_kwh), "measured": measured,
    }


def _source(source: SourceStatus, manager: EnergyManager, now: datetime) -> dict[str, object]:
    """One external limit source with the value it imposes now (in W, or in A)."""
    row: dict[str, object] = {
        "name": source.name, "node": source.node_uuid, "valid_until": _stamp(source.expires_at),
        "failsafe": source.in_failsafe, "binding": source.binding,
        "channel": getattr(source, "channel", None) or source.name,
        "value": getattr(source, "value", None), "unit": getattr(source, "unit", None),
    }
    lease = manager.leases.leases.get(source.name)
    if row["value"] is None and lease is not None:
        row["value"], row["unit"] = _value_now(lease.in_force(now), now)
    return row


def _value_now(limits: ExternalLimits | None, now: datetime) -> tuple[float | None, str | None]:
    """What external limits impose at ``now``: a power [W] if they cap it, else a current [A]."""
    if limits is None:
        return None, None
    entry = value_at(limits.schedule_import, now)
    if entry is None:
        return 0.0, "W"  # an empty import schedule allows nothing
    cap = entry.limits_to_root
    if cap.total_power_W is not None:
        return finite(cap.total_power_W, 1), "W"
    if cap.ac_max_current_A is not None:
        return finite(cap.ac_max_current_A, 2), "A"
    return None, None


def _formula_rows(feed: SiteFeed, reasons: str, now: datetime) -> list[dict[str, object]]:
    """Site limits written as formulas (e.g. over the variable AVAIL), as they evaluate now."""
    rows = []
    for source in feed.formula_sources(now):
        value, unit = _value_now(source.limits, now)
        rows.append({"name": source.name, "node": source.node_uuid, "valid_until": None,
                     "failsafe": False, "binding": f"{source.node_uuid}/{source.name}" in reasons,
                     "channel": "site formula", "value": value, "unit": unit})
    return rows


def numbers(values: np.ndarray, digits: int = 3) -> list:
    """An array as (nested) JSON lists: rounded, "no limit" (inf) and NaN as None."""
    finite_values = np.isfinite(values)
    rounded = np.where(finite_values, np.round(np.where(finite_values, values, 0.0), digits),
                       np.nan)
    return _none_for_nan(rounded.tolist())


def _none_for_nan(items: list) -> list:
    return [_none_for_nan(x) if isinstance(x, list) else (None if x != x else x) for x in items]


def node_rows(problem: Problem, evses: Mapping[str, EvseStatus], now: datetime
              ) -> list[dict[str, object]]:
    """Every node of the tree: per-phase draw of the EVSEs below it against its caps now.

    ``binding`` is the phase with the least headroom (None without any current cap). Built
    with whole-tree arrays: a depot has thousands of nodes and this runs every refresh.
    """
    slot = problem.grid.index_at(now)
    rows_of = [evses.get(u) for u in problem.evse_uuids]
    amps = np.array([max(e.current_a, 0.0) if e else 0.0 for e in rows_of])
    phases = np.array([e.phases if e else 0 for e in rows_of], dtype=np.int64)
    watts = np.array([max(e.power_w, 0.0) if e else 0.0 for e in rows_of])
    nodes = problem.tree.nodes
    lo = np.array([n.evse_lo for n in nodes], dtype=np.int64)
    hi = np.array([n.evse_hi for n in nodes], dtype=np.int64)
    per_phase = amps[:, None] * phase_usage(problem.phase_map, phases)
    load_a = np.vstack([np.zeros(3), per_phase.cumsum(axis=0)])
    load_w = np.concatenate([[0.0], watts.cumsum()])
    drawn = load_a[hi] - load_a[lo]
    power = load_w[hi] - load_w[lo]
    limits = [problem.imp[n.index] for n in nodes]
    cap = np.array([x.current_a[slot] for x in limits]).reshape(len(nodes), 3)
    cap_w = np.array([x.power_w[slot] for x in limits])
    headroom = cap - drawn
    capped = np.isfinite(cap).any(axis=1)
    binding = np.where(capped, np.argmin(np.where(np.isfinite(cap), headroom, np.inf), axis=1),
                       -1).tolist()
    columns = zip(numbers(drawn, 2), numbers(cap, 2), numbers(headroom, 2), numbers(power, 1),
                  numbers(cap_w, 1), binding, strict=True)
    return [{
        "uuid": node.uuid, "depth": node.depth, "evse": node.is_evse,
        "current_a": a, "limit_a": c, "headroom_a": h,
        "binding_phase": None if b < 0 else b,
        "limit_source": None if b < 0 else str(x.current_source[slot, b]),
        "power_w": p, "limit_w": w, "power_source": str(x.power_source[slot]),
    } for node, x, (a, c, h, p, w, b) in zip(nodes, limits, columns, strict=True)]


def _meter(status: Status) -> dict[str, object] | None:
    meter = status.meter
    if meter is None:
        return None
    amps = [None, None, None] if meter.current_a is None else [finite(a, 2)
                                                                for a in meter.current_a]
    return {"state": meter.state, "current_a": amps, "power_w": finite(meter.power_w, 1)}


def live_snapshot(feed: SiteFeed) -> dict[str, object]:
    """The whole live page as data (one status read)."""
    manager = feed.manager
    status = manager.status()
    by_uuid = {e.uuid: e for e in status.evses}
    plan = manager.plan
    return {
        "site": feed.name,
        "now": _stamp(status.now),
        "zone": str(feed.zone),
        "plan": {"method": status.plan_method, "planned_at": _stamp(status.planned_at),
                 "notes": list(status.plan_notes)},
        "tree": [] if plan is None else node_rows(plan.problem, by_uuid, status.now),
        "evses": [_evse(e, manager.measurement(e.uuid)) for e in status.evses],
        "meter": _meter(status),
        "sources": [*(_source(s, manager, status.now) for s in status.sources),
                    *_formula_rows(feed, " ".join(e.reason for e in status.evses), status.now)],
        "variables": [{"name": v.name, "expr": v.expr, "value": finite(v.value, 6),
                       "error": v.error} for v in feed.variables()],
        "connections": dict(feed.connections()),
    }
