"""Publishing ``EnforcedLimits``: to listeners and subscribers, renewed before they expire.

Every tick hands the publisher the allocation in force. An EVSE whose limit changed gets a new
message at once; an unchanged one is renewed every ``valid_ticks / 2`` ticks, staggered by
EVSE, which keeps every limit at least half its validity ahead of expiry while building only a
share of the messages per tick.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta

from energytree.allocator import SlotAllocation
from energytree.plan import limits_res
from energytree.types import EnforcedLimits, ScheduleResEntry

__all__ = ["Publisher"]

log = logging.getLogger(__name__)
Listener = Callable[[list[EnforcedLimits]], None]


class Publisher:
    """The limits in force, and who hears about them."""

    def __init__(self, tick_s: float, valid_ticks: int) -> None:
        self.valid_s = tick_s * valid_ticks
        self.renew_every = max(1, valid_ticks // 2)
        self.limits: list[EnforcedLimits] = []
        self._keys: list[tuple | None] = []
        self._count = 0
        self._listeners: list[Listener] = []
        self._queues: list[asyncio.Queue[list[EnforcedLimits]]] = []

    @property
    def subscribers(self) -> int:
        """How many ``subscribe()`` iterators are open."""
        return len(self._queues)

    def add_listener(self, callback: Listener) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        self._listeners.remove(callback)

    async def subscribe(self) -> AsyncIterator[list[EnforcedLimits]]:
        """The limits in force now, then every later publication (latest wins if slow)."""
        queue: asyncio.Queue[list[EnforcedLimits]] = asyncio.Queue(maxsize=1)
        if self.limits:
            queue.put_nowait(list(self.limits))
        self._queues.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.remove(queue)

    def publish(self, now: datetime, uuids: Sequence[str], alloc: SlotAllocation,
                schedules: Sequence[Sequence[ScheduleResEntry]], slot: int,
                version: object) -> None:
        """Publish the allocation in force, with each EVSE's planned schedule from ``slot``.

        ``version`` changes when the schedules do; a schedule is sliced only for the messages
        actually built.
        """
        until = now + timedelta(seconds=self.valid_s)
        valid_for = math.ceil(self.valid_s)  # whole seconds, never 0; valid_until is exact
        self._count += 1
        if len(self.limits) != len(uuids):
            self.limits = [None] * len(uuids)  # type: ignore[list-item]
            self._keys = [None] * len(uuids)
        published = list(self.limits)
        rows = zip(uuids, alloc.current_a.tolist(), alloc.phases.tolist(),
                   alloc.power_w.tolist(), strict=True)
        for e, (uuid, amps, phases, watts) in enumerate(rows):
            key = (uuid, amps, phases, watts, version, slot)
            if key == self._keys[e] and (self._count + e) % self.renew_every:
                continue
            self._keys[e] = key
            published[e] = EnforcedLimits.model_construct(
                uuid=uuid, valid_until=until, valid_for=valid_for,
                limits_root_side=limits_res(amps, phases, watts),
                schedule=list(schedules[e][slot:]) if e < len(schedules) else [])
        self.limits = published
        for callback in self._listeners:
            try:
                callback(published)
            except Exception:
                log.exception("an enforced-limits listener failed")
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(published)
