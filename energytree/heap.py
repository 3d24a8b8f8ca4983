"""The start-up heap leaves the garbage collector's sight, so a full collection stays short.

Before its first tick the service has imported and built some 100,000 objects (pydantic
models, numpy, the optimiser, the site tree, the first plan). A full collection of the oldest
generation walks all of them: 70–88 ms of CPU on a small machine, an event-loop stall that
delays a meter poll or a tick (longer when the core is shared), every minute or two at 120
EVSEs. These objects live as long as the process, so once start-up is done
``gc.freeze()`` moves them to the permanent generation; later collections walk only what was
made since (a few ms). Frozen objects are still freed by reference counting; only a reference
cycle among them that becomes garbage later stays until the process exits.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap", "thaw_heap"]


def freeze_startup_heap() -> int:
    """Collect once, then freeze what survives; returns the number of frozen objects."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def thaw_heap() -> None:
    """Give the frozen objects back to the collector (after a stop: a process that starts
    the service again, such as a test run, then frees their garbage cycles)."""
    gc.unfreeze()
