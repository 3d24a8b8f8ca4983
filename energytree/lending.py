"""Unused allowance: an EVSE that draws clearly less than it was granted lends the rest.

A car limited by its own charger, tapering or full draws less than its grant; without this,
what it leaves stays unused while others wait. Only EVSEs with a fresh measurement take part
(without one nobody knows what a car draws). Per EVSE:

* **lending**: drawing at least ``UNUSED_A`` below its grant for ``response_s`` caps it at
  its draw plus ``RESERVE_A``, lowered by at most ``STEP_A`` per tick; the allocator gives
  the difference to the others;
* **taking back**: once it draws close to its cap (within ``RESERVE_A / 2``) the cap goes at
  once and the others' grants are cut at once; its own grant rises as the others' cars
  follow their cut (``ramps``), so no node is over its limit meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from energytree.allocator import SlotAllocation
from energytree.drawn import Drawn
from energytree.problem import Problem

__all__ = ["Lending"]

UNUSED_A = 2.0  # [A] drawing this much less than granted counts as not using it
RESERVE_A = 2.0  # [A] a lender keeps this above its draw, so a ramp shows on its meter
STEP_A = 2.0  # [A] a lender's cap falls by at most this per tick
LENT = "unused: drawing {draw:.1f} A, the rest shared with the others"


@dataclass
class Lending:
    """Caps of the EVSEs that lend, by uuid."""

    response_s: float = 6.0
    caps_a: dict[str, float] = field(default_factory=dict)
    under_since: dict[str, float] = field(default_factory=dict)

    def caps(self, problem: Problem, drawn: Mapping[str, Drawn], fresh_since_s: float,
             last: SlotAllocation | None, now_s: float) -> np.ndarray | None:
        """Per EVSE the cap [A] that lends its unused allowance (inf: none), or None."""
        known = set(problem.evse_uuids)
        for book in (self.caps_a, self.under_since):
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
            self._forget(uuid)  # takes its allowance back
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
