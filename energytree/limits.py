"""Per-slot limits of one node in one direction, and how limits combine.

``SlotLimits`` holds, for every slot of a grid, what a node allows in one direction (import or
export): a current cap per grid phase [A], a power cap [W], the minimum current [A] and the
phase-count range. Every cap remembers its source, so a result can say why it is what it is.
Missing values mean "no limit from here": caps are ``inf``, the minimum current is 0 and the
phase range is 1..3.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields, replace

import numpy as np

__all__ = ["ByNode", "SlotLimits", "labels", "tighten", "unlimited", "zero"]

PHASES = 3


@dataclass(frozen=True)
class SlotLimits:
    """Limits per slot; arrays have ``T`` rows (``T × 3`` for the per-phase current)."""

    current_a: np.ndarray
    power_w: np.ndarray
    min_current_a: np.ndarray
    max_phases: np.ndarray
    min_phases: np.ndarray
    current_source: np.ndarray
    power_source: np.ndarray

    @property
    def slots(self) -> int:
        return len(self.power_w)

    def current_cap_a(self) -> np.ndarray:
        """The smallest per-phase cap of each slot [A]."""
        return self.current_a.min(axis=1)


class ByNode:
    """Every node's limits in one direction, stacked: arrays ``[node, slot(, phase)]`` with
    the fields of ``SlotLimits``. ``by_node[i]`` is node ``i``'s ``SlotLimits`` (views, made
    when first asked for), so whole-tree steps index the arrays instead of stacking
    a thousand small ones."""

    def __init__(self, stacked: SlotLimits, empty: bool = False) -> None:
        self.all = stacked  # arrays with one more axis in front: the node
        self.empty = empty  # every node allows nothing (no schedule has an entry)
        self._made: dict[int, SlotLimits] = {}

    def __len__(self) -> int:
        return len(self.all.power_w)

    def __getitem__(self, node: int) -> SlotLimits:
        limits = self._made.get(node)
        if limits is None:
            limits = self._made[node] = SlotLimits(*(getattr(self.all, f.name)[node]
                                                     for f in fields(SlotLimits)))
            # a view into the table: labels change only through ``put``
            limits.current_source.flags.writeable = limits.power_source.flags.writeable = False
        return limits

    def __iter__(self) -> Iterator[SlotLimits]:
        return (self[node] for node in range(len(self)))

    def put(self, node: int, limits: SlotLimits) -> None:
        """Replace node ``node``'s limits (copied into the stacked arrays; an array that is
        a read-only view, such as labels broadcast per node, becomes a copy first)."""
        for f in fields(SlotLimits):
            table = getattr(self.all, f.name)
            if not table.flags.writeable:
                table = table.copy()
                self.all = replace(self.all, **{f.name: table})
            table[node] = getattr(limits, f.name)
        self._made.pop(node, None)
        self.empty = False


def unlimited(slots: int, source: str = "") -> SlotLimits:
    """Limits that restrict nothing."""
    return SlotLimits(
        current_a=np.full((slots, PHASES), np.inf),
        power_w=np.full(slots, np.inf),
        min_current_a=np.zeros(slots),
        max_phases=np.full(slots, PHASES, dtype=np.int8),
        min_phases=np.ones(slots, dtype=np.int8),
        current_source=labels(source, (slots, PHASES)),
        power_source=labels(source, (slots,)),
    )


def labels(source: str, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only array of one source label (a view: building it costs nothing)."""
    return np.broadcast_to(np.array(source, dtype=object), shape)


def zero(slots: int, source: str) -> SlotLimits:
    """Limits that allow nothing (an empty schedule)."""
    limits = unlimited(slots, source)
    limits.current_a[:] = 0.0
    limits.power_w[:] = 0.0
    return limits


def tighten(a: SlotLimits, b: SlotLimits) -> SlotLimits:
    """Combine two sets of limits: the smaller cap and the larger minimum win.

    On a tie the first argument keeps its source, so pass the node's own limits first.
    """
    take_b_current = b.current_a < a.current_a
    take_b_power = b.power_w < a.power_w
    return SlotLimits(
        current_a=np.minimum(a.current_a, b.current_a),
        power_w=np.minimum(a.power_w, b.power_w),
        min_current_a=np.maximum(a.min_current_a, b.min_current_a),
        max_phases=np.minimum(a.max_phases, b.max_phases),
        min_phases=np.maximum(a.min_phases, b.min_phases),
        current_source=np.where(take_b_current, b.current_source, a.current_source),
        power_source=np.where(take_b_power, b.power_source, a.power_source),
    )
