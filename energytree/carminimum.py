"""A car's own minimum current, learned when it refuses what it is offered.

An EVSE may offer 6 A (IEC 61851), but some cars need more — 8 A, 10 A — and pause by
themselves (EVerest ``PausedEV``, OCPP ``SuspendedEV``) when offered less. Sharing a fuse's
room equally among such cars pauses all of them: nothing flows, and every change of the offer
wakes one and pauses it again. So a car that pauses while it is offered at least its EVSE's
minimum and less than its maximum (a full car pauses at any offer) is taken to need more, for
the rest of its session: the next of the minimums cars are known to ask for (8, 10, 13, 16 A),
or one ampere more above those. A step to the next known minimum rather than one ampere at a
time means one refusal, not four, for a car that needs 10 A, and each refusal costs the car's
response time with nothing flowing. The allocator and the next plan then serve fewer cars with
enough (rotating who waits) rather than every car too little.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["MinimumLearner"]

KNOWN_MINIMUMS_A = (8.0, 10.0, 13.0, 16.0)  # [A] what cars that refuse 6 A usually need
STEP_A = 1.0  # [A] above the offer the car refused, beyond the known minimums
EPS = 1e-6


@dataclass
class MinimumLearner:
    """What each session's car was seen to need at least [A], by EVSE uuid."""

    minimum_a: dict[str, float] = field(default_factory=dict)
    version: int = 0  # changes with every lesson, so cached problems are rebuilt

    def refused(self, uuid: str, offered_a: float, evse_min_a: float, evse_max_a: float) -> bool:
        """The car paused by itself while offered ``offered_a``; True when that taught
        something (a higher minimum for this session)."""
        if offered_a < evse_min_a - EPS or offered_a >= evse_max_a - EPS:
            return False
        above = [a for a in KNOWN_MINIMUMS_A if a > offered_a + EPS]
        minimum = min(above[0] if above else offered_a + STEP_A, evse_max_a)
        if minimum <= self.minimum_a.get(uuid, 0.0) + EPS:
            return False
        self.minimum_a[uuid] = minimum
        self.version += 1
        return True

    def forget(self, uuid: str) -> bool:
        """The session ended: the next car starts from the EVSE's minimum again."""
        if self.minimum_a.pop(uuid, None) is None:
            return False
        self.version += 1
        return True

    def by_index(self, uuids: Mapping[str, int]) -> dict[int, float]:
        return {uuids[u]: a for u, a in self.minimum_a.items() if u in uuids}
