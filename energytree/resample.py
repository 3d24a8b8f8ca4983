"""``resample_limits`` for every node of a tree in one pass.

One call per node costs a few dozen numpy calls each; a site of 1000 EVSEs has 1111 nodes and
two directions. Here all schedules' entries are merged in one list, each entry's first slot is
found with one ``searchsorted``, and one more finds the entry in force for every (schedule,
slot) pair. The rule is ``schedule.select``'s: an entry applies from its timestamp inclusive,
of equal timestamps the last one wins, and the first entry also applies before its timestamp.
Each node's ``SlotLimits`` are views into shared arrays; their memory does not overlap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from energytree.limits import PHASES, SlotLimits
from energytree.schedule import merge_entry
from energytree.slots import SlotGrid
from energytree.types import ScheduleReqEntry

__all__ = ["entry_in_force", "resample_all"]


def entry_in_force(schedules: Sequence[Sequence[ScheduleReqEntry]], grid: SlotGrid
                   ) -> tuple[list[ScheduleReqEntry], np.ndarray]:
    """All entries in one list, and per schedule and slot the index of the one in force
    (-1 for an empty schedule)."""
    counts = np.array([len(s) for s in schedules], dtype=np.int64)
    entries = [entry for schedule in schedules for entry in schedule]
    slots = len(grid)
    pick = np.full((len(schedules), slots), -1, dtype=np.int64)
    if not entries:
        return entries, pick
    owner = np.repeat(np.arange(len(schedules)), counts)
    stamps = np.array([entry.timestamp.timestamp() for entry in entries])
    # first slot an entry applies to: the slots that start at or after it
    first_slot = np.searchsorted(grid.starts, stamps, side="left")
    order = np.lexsort((np.arange(len(entries)), stamps, owner))
    key = owner[order] * (slots + 1) + first_slot[order]
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])  # first sorted entry per schedule
    query = np.arange(len(schedules))[:, None] * (slots + 1) + np.arange(slots)[None, :]
    position = np.searchsorted(key, query, side="right") - 1
    position = np.maximum(position, start[:, None])  # before its first entry: the first
    has = counts > 0
    pick[has] = order[position[has]]
    return entries, pick


def resample_all(schedules: Sequence[Sequence[ScheduleReqEntry]], grid: SlotGrid,
                 sources: Sequence[str]) -> list[SlotLimits]:
    """``resample_limits(schedules[i], grid, sources[i])`` for every ``i``."""
    entries, pick = entry_in_force(schedules, grid)
    merged = [merge_entry(entry) for entry in entries]
    empty = pick[:, 0] < 0 if pick.shape[1] else np.array([len(s) == 0 for s in schedules])
    rows = np.maximum(pick, 0)

    def column(index: int, dtype: type, nothing: float) -> np.ndarray:
        values = np.array([m[index] for m in merged], dtype=dtype)
        if not merged:  # nothing to pick from: every schedule is empty
            values = np.full((1, PHASES) if index == 0 else 1, nothing, dtype=dtype)
        gathered = values[rows]
        gathered[empty] = nothing  # an empty schedule allows nothing
        return gathered

    current = column(0, float, 0.0)
    power = column(1, float, 0.0)
    min_current = column(2, float, 0.0)
    max_phases = column(3, np.int8, PHASES)
    min_phases = column(4, np.int8, 1)
    names = np.array([f"{source} (empty schedule)" if none else source
                      for source, none in zip(sources, empty.tolist(), strict=True)],
                     dtype=object)
    current_source = np.empty(current.shape, dtype=object)
    current_source[:] = names[:, None, None]
    power_source = np.empty(power.shape, dtype=object)
    power_source[:] = names[:, None]
    current_source.flags.writeable = power_source.flags.writeable = False
    return [SlotLimits(current[i], power[i], min_current[i], max_phases[i], min_phases[i],
                       current_source[i], power_source[i]) for i in range(len(schedules))]
