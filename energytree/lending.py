"""Unused allowance: an EVSE that draws clearly less than it was granted lends the rest.

A car limited by its own charger, tapering or full draws less than its grant; without this,
what it leaves stays unused while others wait. Only EVSEs with a fresh measurement take part
(without one nobody knows what a car draws). Per EVSE:

* **lending**: drawing at least ``UNUSED_A`` below its grant for ``response_s`` caps it at
  its draw plus ``RESERVE_A``, lowered by at most ``STEP_A`` per tick; the allocator gives
  the difference to the others;
* **taking back**: once it draws close to its cap (within ``RESERVE_A / 2``) the cap goes at
  once and the others' grants are cut at once; its own grant rises only as far as the room
  the tree's limits and the grid meter leave with what everybody *draws* now, so no node is
  over its limit while the others' cars still follow their cut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from energytree.allocator import LiveCap, SlotAllocation
from energytree.drawn import Drawn
from energytree.problem import Problem, phase_usage
from energytree.tree import subtree_sums

__all__ = ["Lending"]

UNUSED_A = 2.0  # [A] drawing this much less than granted counts as not using it
RESERVE_A = 2.0  # [A] a lender keeps this above its draw, so a ramp shows on its meter
STEP_A = 2.0  # [A] a lender's cap falls by at most this per tick
LENT = "unused: drawing {draw:.1f} A, the rest shared with the others"


@dataclass
class Lending:
    """Caps of the EVSEs that lend, and the EVSEs taking their allowance back (by uuid)."""

    response_s: float = 6.0
    caps_a: dict[str, float] = field(default_factory=dict)
    under_since: dict[str, float] = field(default_factory=dict)
    ramping: dict[str, float] = field(default_factory=dict)  # since when

    def caps(self, problem: Problem, drawn: Mapping[str, Drawn], fresh_since_s: float,
             last: SlotAllocation | None, now_s: float) -> np.ndarray | None:
        """Per EVSE the cap [A] that lends its unused allowance (inf: none), or None."""
        known = set(problem.evse_uuids)
        for book in (self.caps_a, self.under_since, self.ramping):
            for uuid in [u for u in book if u not in known]:
                del book[uuid]
        if last is None or len(last.current_a) != problem.evse_count:
            return self._array(problem)
        for e, uuid in enumerate(problem.evse_uuids):
            seen = drawn.get(uuid)
            if seen is None or seen.current_a is None or seen.at_s < fresh_since_s:
                self._forget(uuid)
                continue
            self._update(uuid, max(seen.current_a), float(last.current_a[e]), now_s)
        return self._array(problem)

    def _update(self, uuid: str, draw: float, grant: float, now_s: float) -> None:
        cap = self.caps_a.get(uuid)
        if cap is not None and draw >= cap - RESERVE_A / 2:
            self._forget(uuid)
            self.ramping[uuid] = now_s  # takes its allowance back
            return
        if grant <= 0 or draw > grant - UNUSED_A:
            self.under_since.pop(uuid, None)
            return
        since = self.under_since.setdefault(uuid, now_s)
        if now_s - since >= self.response_s:
            start = grant if cap is None else cap
            self.caps_a[uuid] = max(draw + RESERVE_A, start - STEP_A)

    def _forget(self, uuid: str) -> None:
        self.caps_a.pop(uuid, None)
        self.under_since.pop(uuid, None)

    def _array(self, problem: Problem) -> np.ndarray | None:
        if not self.caps_a:
            return None
        return np.array([self.caps_a.get(u, np.inf) for u in problem.evse_uuids])

    def explain(self, problem: Problem, alloc: SlotAllocation,
                drawn: Mapping[str, Drawn]) -> None:
        """Name the lending in the reason of every EVSE its cap binds."""
        for e, uuid in enumerate(problem.evse_uuids):
            cap, seen = self.caps_a.get(uuid), drawn.get(uuid)
            if cap is not None and seen is not None and seen.current_a is not None \
                    and alloc.current_a[e] >= cap - 1e-6:
                alloc.reasons[e] = LENT.format(draw=max(seen.current_a))

    def limit_ramps(self, problem: Problem, slot: int, alloc: SlotAllocation,
                    live: Sequence[LiveCap], drawn: Mapping[str, Drawn],
                    fresh_since_s: float, previous: SlotAllocation | None,
                    now_s: float) -> None:
        """Hold each EVSE taking its allowance back to its draw plus the room left now."""
        if not self.ramping:
            return
        load_a, draw = _drawing(problem, alloc, previous, drawn, fresh_since_s)
        cap_a = _node_caps(problem, slot, live)
        usage = phase_usage(problem.phase_map, np.maximum(alloc.phases, 1))
        for e, uuid in enumerate(problem.evse_uuids):
            since = self.ramping.get(uuid)
            if since is None:
                continue
            path = problem.inner_paths[e]
            phases = usage[e] > 0
            room = (cap_a[path][:, phases] - load_a[path][:, phases]).min(initial=np.inf)
            allowed = draw[e] + max(room, 0.0)
            # all or nothing: a charging car keeps at least its minimum (a grant only falls)
            allowed = max(allowed, min(problem.min_current_a[e, slot], alloc.current_a[e]))
            if alloc.current_a[e] <= allowed or now_s - since > 2 * self.response_s:
                del self.ramping[uuid]  # its share is back
                continue
            alloc.current_a[e] = allowed
            alloc.power_w[e] = allowed * alloc.phases[e] * problem.voltage_v
            alloc.reasons[e] = f"taking back its allowance: {allowed:.1f} A as others slow"
            load_a[path] += (allowed - draw[e]) * usage[e]


def _drawing(problem: Problem, alloc: SlotAllocation, previous: SlotAllocation | None,
             drawn: Mapping[str, Drawn], fresh_since_s: float
             ) -> tuple[np.ndarray, np.ndarray]:
    """Load per inner node and grid phase [K, 3] from what everybody may draw now, and each
    EVSE's own draw [A]: measured where fresh, else the larger of its old and new grant."""
    n = problem.evse_count
    per_phase = np.zeros((n, 3))
    own = np.zeros(n)
    new = np.clip(alloc.current_a, 0.0, None)[:, None] * phase_usage(
        problem.phase_map, np.maximum(alloc.phases, 1))
    old = np.zeros_like(new) if previous is None or len(previous.current_a) != n else (
        np.clip(previous.current_a, 0.0, None)[:, None]
        * phase_usage(problem.phase_map, np.maximum(previous.phases, 1)))
    for e, uuid in enumerate(problem.evse_uuids):
        seen = drawn.get(uuid)
        if seen is not None and seen.current_a is not None and seen.at_s >= fresh_since_s:
            np.add.at(per_phase[e], problem.wired_map[e], seen.current_a)
            own[e] = max(seen.current_a)
        else:
            per_phase[e] = np.maximum(old[e], new[e])
            own[e] = per_phase[e].max()
    return subtree_sums(per_phase, problem.inner_lo, problem.inner_hi), own


def _node_caps(problem: Problem, slot: int, live: Sequence[LiveCap]) -> np.ndarray:
    """[K, 3] every inner node's current cap now, live caps (the grid meter's) included."""
    caps = problem.node_cap_a[0][:, slot].copy()
    position = {node.index: k for k, node in enumerate(problem.inner)}
    for cap in live:
        k = position.get(cap.node_index)
        if k is not None:
            caps[k] = np.minimum(caps[k], cap.current_a)
    return caps
