"""``resample_limits`` for every node of a tree in one pass.

One call per node costs a few dozen numpy calls each; a site of 1000 EVSEs has 1111 nodes and
two directions. Here all schedules' entries are merged in one list, each entry's first slot is
found with one ``searchsorted``, and the entry in force in every (schedule, slot) pair is a
running maximum along the slots. The rule is ``schedule.select``'s: an entry applies from its
timestamp inclusive, of equal timestamps the last one wins, and the first entry also applies
before its timestamp. The result is one ``ByNode`` table: a node's limits are views into it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from energytree.limits import PHASES, ByNode, SlotLimits
from energytree.schedule import merge_entries
from energytree.slots import SlotGrid
from energytree.types import ScheduleReqEntry

__all__ = ["InForce", "entry_in_force", "resample_all"]

InForce = tuple[list[ScheduleReqEntry], np.ndarray]


def entry_in_force(schedules: Sequence[Sequence[ScheduleReqEntry]], grid: SlotGrid) -> InForce:
    """All entries in one list, and per schedule and slot the index of the one in force
    (-1 for an empty schedule)."""
    counts = np.array([len(s) for s in schedules], dtype=np.int64)
    entries = [entry for schedule in schedules for entry in schedule]
    slots = len(grid)
    position = np.full((len(schedules), slots), -1, dtype=np.int64)
    if not entries or not slots:
        return entries, position
    owner = np.repeat(np.arange(len(schedules)), counts)
    stamps = np.array([entry.timestamp.timestamp() for entry in entries])
    order = np.lexsort((np.arange(len(entries)), stamps, owner))  # of equal times: input order
    # first slot an entry applies to: the slots that start at or after it
    first_slot = np.searchsorted(grid.starts, stamps[order], side="left")
    key = owner[order] * (slots + 1) + first_slot
    last = np.r_[key[1:] != key[:-1], True] & (first_slot < slots)  # the last of equal keys
    position[owner[order][last], first_slot[last]] = np.nonzero(last)[0]
    np.maximum.accumulate(position, axis=1, out=position)  # sorted positions only grow
    start = np.cumsum(counts) - counts  # first sorted entry of each schedule
    before = (position < 0) & (counts > 0)[:, None]  # before its first entry: the first
    position[before] = np.broadcast_to(start[:, None], position.shape)[before]
    pick = np.where(position >= 0, order[np.maximum(position, 0)], -1)
    return entries, pick


def resample_all(schedules: Sequence[Sequence[ScheduleReqEntry]], grid: SlotGrid,
                 sources: Sequence[str], in_force: InForce | None = None) -> ByNode:
    """``resample_limits(schedules[i], grid, sources[i])`` for every ``i``, as one table;
    ``in_force`` is ``entry_in_force(schedules, grid)`` where the caller has it already."""
    entries, pick = in_force or entry_in_force(schedules, grid)
    # an empty schedule allows nothing: its pick (-1) takes a last row of 0 A and 0 W
    nothing = (np.zeros((1, PHASES)), np.zeros(1), np.zeros(1), np.full(1, PHASES, np.int8),
               np.ones(1, np.int8))
    if entries:
        current, power, min_current, max_phases, min_phases = (
            np.concatenate([values, none])[pick]
            for values, none in zip(merge_entries(entries), nothing, strict=True))
    else:  # all empty (as export schedules often are): zeros need no gathering
        current, power, min_current = (np.zeros((*pick.shape, PHASES)), np.zeros(pick.shape),
                                       np.zeros(pick.shape))
        max_phases = np.full(pick.shape, PHASES, dtype=np.int8)
        min_phases = np.ones(pick.shape, dtype=np.int8)
    empty = pick[:, 0] < 0 if pick.shape[1] else np.array([len(s) == 0 for s in schedules])
    names = np.array([f"{source} (empty schedule)" if none else source
                      for source, none in zip(sources, empty.tolist(), strict=True)],
                     dtype=object)
    # one label per node, as views: a few MB of pointers less to write (``put`` copies them)
    return ByNode(SlotLimits(current, power, min_current, max_phases, min_phases,
                             np.broadcast_to(names[:, None, None], current.shape),
                             np.broadcast_to(names[:, None], power.shape)), not entries)
