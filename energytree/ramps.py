"""A grant rises only into room that is free now, while other cars still follow their cuts.

The allocator shares the limits among the grants of *this* tick: when one EVSE is cut so
that another may rise, both change at once, but the cut car follows seconds late. Until it
has, the rising EVSE may only take the room the tree's limits (and the grid meter's budget)
leave with what every EVSE may still be drawing: its fresh measurement (or, while its car may
still be following a rise, the rise), or else the most it was granted during the cars' response
time (nothing, where its state says no car charges).
Cuts apply at once; a rise waits at most that response time. A rising EVSE whose room is
below its minimum current waits (0 A) unless its car is charging, then it keeps the minimum.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from energytree.allocator import EPS, LiveCap, SlotAllocation, live_positions, node_caps
from energytree.drawn import Drawn
from energytree.livecaps import granted_per_phase
from energytree.problem import Problem, phase_usage
from energytree.tree import subtree_sums

__all__ = ["RampLimiter"]

WAITING = "waiting for other cars to follow their cut"


@dataclass
class RampLimiter:
    """Remembers recent grants per EVSE and grid phase; ``limit`` holds back the rises."""

    response_s: float = 6.0
    _grants: deque[tuple[float, np.ndarray]] = field(default_factory=deque)

    def limit(self, problem: Problem, slot: int, alloc: SlotAllocation,
              live: Sequence[LiveCap], drawn: Mapping[str, Drawn], fresh_since_s: float,
              now_s: float, charging: np.ndarray) -> None:
        """Lower the rising grants of ``alloc`` to what fits now, then remember it.

        ``charging`` marks the EVSEs whose car is charging (or may be): only these keep
        their minimum current where the room now is smaller; a car that is not charging would
        start at it while the others still draw what they were cut from. (A car that says it
        paused still counts with what it was granted: its report may answer an older offer,
        and it resumes at the newer one.)"""
        may_draw = self._may_draw(problem, drawn, fresh_since_s)
        new = granted_per_phase(problem, alloc)
        rising = np.nonzero((new > may_draw + EPS).any(axis=1))[0]
        if len(rising) and may_draw.any():
            self._hold_back(problem, slot, alloc, live, may_draw, new, rising, charging)
            new = granted_per_phase(problem, alloc)
        if self._grants and self._grants[-1][1].shape != new.shape:
            self._grants.clear()  # another tree
        self._grants.append((now_s, new))
        while len(self._grants) > 1 and self._grants[0][0] < now_s - self.response_s:
            self._grants.popleft()

    def least_offer(self, evse: int) -> np.ndarray | None:
        """[3] The least offered to EVSE ``evse`` per grid phase during the cars' response
        time, among its offers above 0 A [A]: a car that reports a pause or a resumption may
        be answering any of them."""
        offers = [g[evse] for _, g in self._grants if evse < len(g) and g[evse].max() > EPS]
        return np.min(offers, axis=0) if offers else None

    def _may_draw(self, problem: Problem, drawn: Mapping[str, Drawn],
                  fresh_since_s: float) -> np.ndarray:
        """[N, 3] what each EVSE may still draw per grid phase [A]."""
        n = problem.evse_count
        recent = [g for _, g in self._grants if g.shape == (n, 3)]
        most = np.max(recent, axis=0) if recent else np.zeros((n, 3))
        rose = most > recent[0] + EPS if recent else np.zeros((n, 3), dtype=bool)
        result = most.copy()
        result[~problem.wants_power] = 0.0  # unplugged, finished, disabled: nothing flows
        for e, uuid in enumerate(problem.evse_uuids):
            seen = drawn.get(uuid)
            if seen is not None and seen.current_a is not None and seen.at_s >= fresh_since_s:
                result[e] = 0.0
                np.add.at(result[e], problem.wired_map[e], seen.current_a)
                # a car still following a recent rise may draw up to it, whatever it drew
                result[e] = np.where(rose[e], np.maximum(result[e], most[e]), result[e])
        return result

    def _hold_back(self, problem: Problem, slot: int, alloc: SlotAllocation,
                   live: Sequence[LiveCap], may_draw: np.ndarray, new: np.ndarray,
                   rising: np.ndarray, charging: np.ndarray) -> None:
        volts = problem.voltage_v
        base = np.maximum(may_draw, np.where(
            np.isin(np.arange(len(new)), rising)[:, None], 0.0, new))
        load = subtree_sums(base, problem.inner_lo, problem.inner_hi)
        load_w = load.sum(axis=1) * volts
        caps_a, caps_w = node_caps(problem, slot, False, live_positions(problem, live))
        usage = phase_usage(problem.phase_map, np.maximum(alloc.phases, 1))
        for e in rising:
            path, phases = problem.inner_paths[e], usage[e] > 0
            now_a = may_draw[e][phases].max(initial=0.0)
            own_w = may_draw[e].sum() * volts  # replaced by the new grant, not added to it
            room_a = (caps_a[path][:, phases] - load[path][:, phases]).min(initial=np.inf)
            room_w = (caps_w[path] - load_w[path]).min(initial=np.inf) + own_w
            allowed = min(now_a + max(room_a, 0.0),
                          max(room_w, 0.0) / (volts * max(int(phases.sum()), 1)))
            if allowed < problem.min_current_a[e, slot] - EPS:
                allowed = min(problem.min_current_a[e, slot], alloc.current_a[e]) \
                    if now_a > EPS and charging[e] else 0.0
            if allowed < alloc.current_a[e] - EPS:
                alloc.current_a[e] = allowed
                alloc.power_w[e] = allowed * alloc.phases[e] * volts
                alloc.reasons[e] = f"{WAITING} ({allowed:.1f} A for now)"
            granted = alloc.current_a[e] * usage[e]
            load[path] += (granted - may_draw[e]).clip(0.0)[None, :]
            load_w[path] += max(granted.sum() * volts - own_w, 0.0)
