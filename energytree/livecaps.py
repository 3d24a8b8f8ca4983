"""Live caps: what external sources and the grid meter allow right now, as node caps.

The manager's tick adds these to the plan's values. The grid meter gives the EVSEs
``installation max − (measured − what our EVSEs draw) − margin`` per phase, or the configured
safe current while it is silent (Alfen's active load balancing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

from energytree.allocator import LiveCap, SlotAllocation
from energytree.plan import Plan
from energytree.problem import ExternalSource, Problem
from energytree.schedule import resample_limits
from energytree.slots import SlotGrid
from energytree.status import MeterFeed
from energytree.types import ExternalLimits, Powermeter

__all__ = ["METER", "caps_on_phases", "live_caps", "reserved_allocation"]

METER = "grid meter"


def live_caps(problem: Problem, now: datetime, sources: Sequence[ExternalSource],
              meter: MeterFeed | None, safe_current_a: float, installation_max_a: float | None,
              margin_a: float, measurements: Mapping[str, Powermeter],
              last: SlotAllocation | None) -> list[LiveCap]:
    """Every source's limit at ``now`` on its node, and the grid meter's cap on the root."""
    grid = SlotGrid(np.array([now.timestamp()]), np.array([now.timestamp() + 1.0]))
    caps = []
    for source in sources:
        entries = source.limits.schedule_import
        if not entries:
            continue
        node = problem.tree.node(source.node_uuid)
        label = f"{node.uuid}/{source.name}"
        lim = resample_limits(entries, grid, label)
        caps.append(LiveCap(node.index, lim.current_a[0], float(lim.power_w[0]), label))
    if meter is not None:
        caps.append(meter_cap(problem, grid, meter, safe_current_a, installation_max_a,
                              margin_a, our_draw(problem, measurements, last)))
    return caps


def meter_cap(problem: Problem, grid: SlotGrid, meter: MeterFeed, safe_current_a: float,
              installation_max_a: float | None, margin_a: float, ours: np.ndarray) -> LiveCap:
    """The EVSEs' budget per phase from the grid meter, or the safe current without one."""
    root = problem.tree.root.index
    if meter.current_a is None:
        safe = np.full(3, safe_current_a)
        return LiveCap(root, safe, np.inf, f"{METER} ({meter.state}): safe current")
    limit = connection_a(problem, grid) if installation_max_a is None else installation_max_a
    household = np.maximum(np.asarray(meter.current_a) - ours, 0.0)
    budget = np.maximum(limit - household - margin_a, 0.0)
    return LiveCap(root, budget, np.inf, METER)


def connection_a(problem: Problem, grid: SlotGrid) -> np.ndarray:
    """The root's own current limit per phase now [A]: the grid connection.

    External limits on the root (operator, OCPP, API) cap our EVSEs only; the household must
    not be subtracted from them, so they are left out here. Where the root has no current
    limit of its own, its limit with every source is the best we know.
    """
    root = problem.tree.root
    own = resample_limits(root.request.schedule_import, grid, root.uuid).current_a[0]
    if problem.inner and problem.inner[0].index == root.index:
        own = np.where(np.isfinite(own), own, problem.node_cap_a[0][0, 0])
    return own


def our_draw(problem: Problem, measurements: Mapping[str, Powermeter],
             last: SlotAllocation | None) -> np.ndarray:
    """Current per grid phase our EVSEs draw: measured where reported, else what was allowed.

    Without a measurement a car is assumed to draw its allowance; a car drawing less makes
    the household look smaller until its meter reports.
    """
    draw = np.zeros(3)
    for e, node in enumerate(problem.tree.evses):
        meter = measurements.get(node.uuid)
        phases = problem.phase_map[e]
        if meter is not None and meter.current_A is not None:
            measured = [meter.current_A.L1, meter.current_A.L2, meter.current_A.L3]
            for k, value in enumerate(measured):
                draw[phases[k]] += abs(value or 0.0)
        elif last is not None and e < len(last.current_a) and last.current_a[e] > 0:
            draw[phases[: int(last.phases[e])]] += last.current_a[e]
    return draw


def caps_on_phases(plan: Plan, slot: int, caps: np.ndarray | None, phases: np.ndarray
                    ) -> np.ndarray | None:
    """The plan's current per phase [A] for the phase counts the tick chose.

    The plan may have counted on three phases where the hysteresis keeps one (or back):
    the same power then needs a different current. A planned EVSE keeps at least its
    minimum current; the tree's and the live caps still bound the result.
    """
    if caps is None:
        return None
    problem = plan.problem
    if slot >= problem.slots or len(caps) != len(phases):
        return caps
    planned = np.maximum(plan.phases[:, slot], 1)
    scaled = caps * planned / np.maximum(phases, 1)
    scaled = np.where(caps > 0, np.maximum(scaled, problem.min_current_a[:, slot]), 0.0)
    return np.where(planned == phases, caps, scaled)


def reserved_allocation(problem: Problem, slot: int, now: datetime,
                        reservations: Mapping[str, ExternalLimits]) -> SlotAllocation | None:
    """The allocation held for reserved EVSEs (NaN for everybody else), or None."""
    if not reservations:
        return None
    n = problem.evse_count
    amps = np.full(n, np.nan)
    phases = problem.max_phases[:, slot].astype(np.int64)
    reasons = [""] * n
    grid = SlotGrid(np.array([now.timestamp()]), np.array([now.timestamp() + 1.0]))
    for e, uuid in enumerate(problem.evse_uuids):
        limits = reservations.get(uuid)
        if limits is None or not limits.schedule_import:
            continue
        value = resample_limits(limits.schedule_import, grid, uuid).current_a[0].min()
        amps[e] = value if np.isfinite(value) else 0.0
        reasons[e] = "reserved: drawing without our control (offline)"
    if np.isnan(amps).all():
        return None
    watts = np.nan_to_num(amps) * phases * problem.voltage_v
    return SlotAllocation(amps, phases, watts, reasons)
