"""Stopping background tasks for sure."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object] | None]) -> None:
    """Cancel each task and wait until it has ended.

    A timeout that fires at the same moment can swallow one cancellation on Python 3.11, so
    a task that is still running is cancelled again. Its outcome is not re-raised (a crash
    is logged where the task runs).
    """
    for task in tasks:
        if task is None:
            continue
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not warn about it
