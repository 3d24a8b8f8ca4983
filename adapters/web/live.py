"""The live feed behind the page: one loop builds the snapshot, every open page gets it.

Server-sent events (``text/event-stream``): ``live`` carries the whole live snapshot each
refresh when it changed, ``plan`` the chart data whenever a new plan exists. A slow page only
ever misses intermediate frames, never the latest one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

__all__ = ["LiveHub", "sse_frame"]

QUEUE_FRAMES = 4


def sse_frame(event: str, data: object) -> bytes:
    """One SSE frame; JSON has no raw newlines, so one ``data:`` line suffices."""
    return f"event: {event}\ndata: {json.dumps(data, allow_nan=False)}\n\n".encode()


class LiveHub:
    """Fans the snapshots out to the open pages.

    Usage::

        hub = LiveHub(build_live, plan_key, build_plan, refresh_s=0.5)
        task = asyncio.create_task(hub.run())
        queue = hub.join(); frame = await queue.get(); hub.leave(queue)
    """

    def __init__(self, build_live: Callable[[], dict[str, Any]], plan_key: Callable[[], object],
                 build_plan: Callable[[], dict[str, Any] | None], refresh_s: float) -> None:
        self._build_live, self._plan_key, self._build_plan = build_live, plan_key, build_plan
        self.refresh_s = refresh_s
        self._queues: set[asyncio.Queue[bytes | None]] = set()
        self._plan_cache: tuple[object, bytes] | None = None

    @property
    def pages(self) -> int:
        return len(self._queues)

    def join(self) -> asyncio.Queue[bytes | None]:
        """A new page: its queue starts with the current plan and live state."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_FRAMES)
        queue.put_nowait(self.plan_frame())
        queue.put_nowait(sse_frame("live", self._build_live()))
        self._queues.add(queue)
        return queue

    def leave(self, queue: asyncio.Queue[bytes | None]) -> None:
        self._queues.discard(queue)

    def close(self) -> None:
        """Tell every page's stream to end (the server is stopping)."""
        for queue in self._queues:
            _offer(queue, None)
        self._queues.clear()

    def plan_frame(self) -> bytes:
        """The plan's chart data, rebuilt only when the manager has a new plan."""
        key = self._plan_key()
        if self._plan_cache is None or self._plan_cache[0] != key:
            self._plan_cache = (key, sse_frame("plan", self._build_plan()))
        return self._plan_cache[1]

    async def run(self) -> None:
        last_live, last_plan = b"", b""
        while True:
            await asyncio.sleep(self.refresh_s)
            if not self._queues:
                last_live, last_plan = b"", b""
                continue
            plan = self.plan_frame()
            live = sse_frame("live", self._build_live())
            for frame, last in ((plan, last_plan), (live, last_live)):
                if frame != last:
                    for queue in list(self._queues):
                        _offer(queue, frame)
            last_live, last_plan = live, plan


def _offer(queue: asyncio.Queue[bytes | None], frame: bytes | None) -> None:
    """Put without waiting: a full queue drops its oldest frame."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(frame)
