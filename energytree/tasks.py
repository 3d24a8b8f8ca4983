"""Stopping background tasks for sure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

__all__ = ["cancel_and_wait"]

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object] | None],
                          give_up_s: float = 10.0) -> None:
    """Cancel each task and wait until it has ended (at most ``give_up_s`` per task).

    A timeout or task group that meets the cancellation at the same moment can swallow it on
    Python 3.11, so a task that is still running is cancelled again. A task that still runs
    after ``give_up_s`` is logged and left behind rather than hanging the caller. Outcomes
    are not re-raised (a crash is logged where the task runs).
    """
    loop = asyncio.get_running_loop()
    for task in tasks:
        if task is None:
            continue
        deadline = loop.time() + give_up_s
        while not task.done() and loop.time() < deadline:
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        if not task.done():
            log.error("task %s did not stop within %.0f s; leaving it", task.get_name(),
                      give_up_s)
        elif not task.cancelled():
            task.exception()  # retrieved, so asyncio does not warn about it
