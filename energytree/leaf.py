"""The EVSE side of ``EnforcedLimits``: apply a limit until it expires, then fall back.

A charger stack that embeds energytree gives each EVSE a ``LimitReceiver``. It keeps the last
limit addressed to its uuid and answers "how much may I draw now?". The moment
``valid_until`` (or ``valid_for`` after receipt, on the monotonic clock) passes without a
fresh limit, the answer is the fallback: 0 A, or the EVSE's configured safe current.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from energytree.clock import Clock, SystemClock
from energytree.errors import NotFoundError
from energytree.types import EnforcedLimits, LimitsRes

__all__ = ["LimitReceiver"]

log = logging.getLogger(__name__)


@dataclass
class _Held:
    limits: LimitsRes
    deadline_s: float  # monotonic


class LimitReceiver:
    """Holds one EVSE's enforced limit and its deadline.

    >>> leaf = LimitReceiver("evse-1", fallback_a=0.0)
    >>> leaf.apply(limits)          # from the manager
    >>> leaf.current_a()            # what the EVSE may draw now [A per phase]
    """

    def __init__(self, uuid: str, fallback_a: float = 0.0, clock: Clock | None = None) -> None:
        self.uuid = uuid
        self.fallback_a = fallback_a
        self._clock = clock or SystemClock()
        self._held: _Held | None = None
        self._expired_logged = False

    def apply(self, limits: EnforcedLimits) -> None:
        """Accept a limit for this EVSE; limits for other uuids are refused."""
        if limits.uuid != self.uuid:
            raise NotFoundError(f"limits for {limits.uuid!r} reached EVSE {self.uuid!r}")
        now_wall = self._clock.now()
        now_mono = self._clock.monotonic()
        remaining = (limits.deadline(now_wall) - now_wall) / timedelta(seconds=1)
        if remaining <= 0 or limits.limits_root_side is None:
            return  # already expired: ignore, as EVerest does
        self._held = _Held(limits.limits_root_side, now_mono + remaining)
        self._expired_logged = False

    @property
    def expired(self) -> bool:
        return self._held is None or self._clock.monotonic() >= self._held.deadline_s

    def limits(self) -> LimitsRes:
        """The limit in force now: the last one received, or the fallback once it expired."""
        if self.expired:
            if self._held is not None and not self._expired_logged:
                log.warning("EVSE %s: power budget expired, falling back to %.1f A",
                            self.uuid, self.fallback_a)
                self._expired_logged = True
            return LimitsRes(ac_max_current_A=self.fallback_a)
        assert self._held is not None
        return self._held.limits

    def current_a(self) -> float:
        """Current per phase the EVSE may draw now [A] (0 for export limits)."""
        value = self.limits().ac_max_current_A
        return max(0.0, value or 0.0)
