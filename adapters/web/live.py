"""The live feed behind the page: one loop builds the snapshot, every open page gets it.

Server-sent events (``text/event-stream``): ``live`` carries the whole live snapshot each
refresh when it changed, ``plan`` the chart data whenever a new plan exists. Each page has a
mailbox holding the latest frame of each kind: a slow page skips intermediate frames but
always gets the latest live state and the latest plan.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

__all__ = ["LiveHub", "Mailbox", "sse_frame"]



class Mailbox:
    """The latest frame of each event kind for one page; ``take`` waits for news."""

    def __init__(self) -> None:
        self._frames: dict[str, bytes] = {}
        self._ready = asyncio.Event()
        self.closed = False

    def put(self, event: str, frame: bytes) -> None:
        self._frames[event] = frame
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def take(self) -> list[bytes] | None:
        """The frames that arrived since the last call, oldest kind first; None once closed."""
        await self._ready.wait()
        self._ready.clear()
        if self.closed:
            return None
        frames, self._frames = list(self._frames.values()), {}
        return frames


def sse_frame(event: str, data: object) -> bytes:
    """One SSE frame; JSON has no raw newlines, so one ``data:`` line suffices."""
    return f"event: {event}\ndata: {json.dumps(data, allow_nan=False)}\n\n".encode()


class LiveHub:
    """Fans the snapshots out to the open pages.

    Usage::

        hub = LiveHub(build_live, plan_key, build_plan, refresh_s=0.5)
        task = asyncio.create_task(hub.run())
        mailbox = hub.join(); frames = await mailbox.take(); hub.leave(mailbox)
    """

    def __init__(self, build_live: Callable[[], dict[str, Any]], plan_key: Callable[[], object],
                 build_plan: Callable[[], dict[str, Any] | None], refresh_s: float) -> None:
        self._build_live, self._plan_key, self._build_plan = build_live, plan_key, build_plan
        self.refresh_s = refresh_s
        self._pages: set[Mailbox] = set()
        self._plan_cache: tuple[object, bytes] | None = None

    @property
    def pages(self) -> int:
        return len(self._pages)

    def join(self) -> Mailbox:
        """A new page: its mailbox starts with the current plan and live state."""
        mailbox = Mailbox()
        mailbox.put("plan", self.plan_frame())
        mailbox.put("live", sse_frame("live", self._build_live()))
        self._pages.add(mailbox)
        return mailbox

    def leave(self, mailbox: Mailbox) -> None:
        self._pages.discard(mailbox)

    def close(self) -> None:
        """Tell every page's stream to end (the server is stopping)."""
        for mailbox in self._pages:
            mailbox.close()
        self._pages.clear()

    def plan_frame(self) -> bytes:
        """The plan's chart data, rebuilt only when the manager has a new plan object (kept
        here, so its identity cannot pass to a later plan)."""
        key = self._plan_key()
        if self._plan_cache is None or self._plan_cache[0] is not key:
            self._plan_cache = (key, sse_frame("plan", self._build_plan()))
        return self._plan_cache[1]

    async def run(self) -> None:
        last_live, last_plan = b"", b""
        while True:
            await asyncio.sleep(self.refresh_s)
            if not self._pages:
                last_live, last_plan = b"", b""
                continue
            plan = self.plan_frame()
            live = sse_frame("live", self._build_live())
            for event, frame, last in (("plan", plan, last_plan), ("live", live, last_live)):
                if frame != last:
                    for mailbox in self._pages:
                        mailbox.put(event, frame)
            last_live, last_plan = live, plan
