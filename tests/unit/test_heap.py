"""The start-up heap is frozen after start-up and given back after a stop."""

from __future__ import annotations

import gc

from energytree.heap import freeze_startup_heap, thaw_heap


def test_freeze_moves_the_live_heap_out_of_the_collections_and_thaw_gives_it_back() -> None:
    kept = [[n] for n in range(1000)]  # objects alive at start-up
    try:
        frozen = freeze_startup_heap()
        assert frozen >= len(kept)
        assert gc.get_freeze_count() == frozen
    finally:
        thaw_heap()
    assert gc.get_freeze_count() == 0
