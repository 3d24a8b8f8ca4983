"""Live caps: what external sources and the grid meter allow right now, as node caps.

The manager's tick adds these to the plan's values. The grid meter gives the EVSEs what the
meter loop (``meterloop``) leaves them per phase, or the configured safe current while it is
silent (Alfen's active load balancing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

from energytree.allocator import LiveCap, SlotAllocation
from energytree.drawn import Drawn
from energytree.plan import Plan
from energytree.problem import ExternalSource, Problem, phase_usage
from energytree.schedule import resample_limits
from energytree.slots import SlotGrid
from energytree.status import MeterFeed
from energytree.types import ExternalLimits

__all__ = ["METER", "caps_on_phases", "connection_a", "granted_per_phase", "live_caps",
           "our_draw", "reserved_allocation"]

METER = "grid meter"


def live_caps(problem: Problem, now: datetime, sources: Sequence[ExternalSource],
              meter: MeterFeed | None, safe_current_a: float, budget_a: np.ndarray | None
              ) -> list[LiveCap]:
    """Every source's limit at ``now`` on its node, and the grid meter's cap on the root.

    ``budget_a`` is what the meter loop leaves the EVSEs per grid phase (None: no reading).
    """
    grid = _instant(now)
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
        root = problem.tree.root.index
        if meter.current_a is None or budget_a is None:
            safe = np.full(3, safe_current_a)
            caps.append(LiveCap(root, safe, np.inf, f"{METER} ({meter.state}): safe current"))
        else:
            caps.append(LiveCap(root, np.asarray(budget_a, dtype=float), np.inf, METER))
    return caps


def _instant(now: datetime) -> SlotGrid:
    return SlotGrid(np.array([now.timestamp()]), np.array([now.timestamp() + 1.0]))


def connection_a(problem: Problem, now: datetime) -> np.ndarray:
    """The root's own current limit per phase now [A]: the grid connection.

    External limits on the root (operator, OCPP, API) cap our EVSEs only; the household must
    not be subtracted from them, so they are left out here. Where the root has no current
    limit of its own, its limit with every source is the best we know.
    """
    root = problem.tree.root
    own = resample_limits(root.request.schedule_import, _instant(now), root.uuid).current_a[0]
    if problem.inner and problem.inner[0].index == root.index:
        slot = problem.grid.index_at(now)
        own = np.where(np.isfinite(own), own, problem.node_cap_a[0][0, slot])
    return own


def our_draw(problem: Problem, drawn: Mapping[str, Drawn], fresh_since_s: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """What our EVSEs' own meters say they draw per grid phase [A], and who said it [N].

    A measurement counts when it arrived after ``fresh_since_s`` (monotonic).
    """
    measured = np.zeros(3)
    fresh = np.zeros(problem.evse_count, dtype=bool)
    for e, node in enumerate(problem.tree.evses):
        seen = drawn.get(node.uuid)
        if seen is not None and seen.current_a is not None and seen.at_s >= fresh_since_s:
            np.add.at(measured, problem.wired_map[e], seen.current_a)
            fresh[e] = True
    return measured, fresh


def granted_per_phase(problem: Problem, alloc: SlotAllocation) -> np.ndarray:
    """[N, 3] the current each EVSE was granted on each grid phase [A] (import only)."""
    amps = np.clip(alloc.current_a, 0.0, None)
    return amps[:, None] * phase_usage(problem.phase_map, np.maximum(alloc.phases, 1))


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
    grid = _instant(now)
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
