"""The slot grid a plan is made on.

Slots start at ``now`` and follow the wall-clock grid of the slot length (so quarter-hour
prices line up), with an extra boundary at every breakpoint found in any schedule, target or
forecast inside the horizon. Within one slot every input is therefore constant.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

__all__ = ["SlotGrid", "build_grid"]

MAX_SLOTS = 5_000


@dataclass(frozen=True)
class SlotGrid:
    """Half-open slots ``[starts[i], ends[i])`` in epoch seconds."""

    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def durations_s(self) -> np.ndarray:
        return self.ends - self.starts

    @property
    def hours(self) -> np.ndarray:
        """Slot lengths [h], the weight of each slot's power in energy."""
        return self.durations_s / 3600.0

    @property
    def now(self) -> datetime:
        return epoch_to_datetime(self.starts[0])

    def start_time(self, index: int) -> datetime:
        return epoch_to_datetime(self.starts[index])

    def index_at(self, moment: datetime) -> int:
        """The slot containing ``moment`` (clipped to the grid)."""
        t = moment.timestamp()
        return int(np.clip(np.searchsorted(self.starts, t, side="right") - 1, 0, len(self) - 1))


def epoch_to_datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(float(seconds), tz=UTC)


def build_grid(
    now: datetime,
    horizon_s: float,
    slot_s: float,
    breakpoints: Iterable[datetime] = (),
) -> SlotGrid:
    """Uniform wall-clock slots from ``now`` plus every breakpoint inside the horizon."""
    if slot_s <= 0 or horizon_s <= 0:
        raise ValueError("slot length and horizon must be positive")
    if horizon_s / slot_s > MAX_SLOTS:
        raise ValueError(f"horizon / slot length gives more than {MAX_SLOTS} slots")
    start = now.timestamp()
    end = start + horizon_s
    first_boundary = (np.floor(start / slot_s) + 1) * slot_s
    uniform = np.arange(first_boundary, end, slot_s)
    extra = np.array([b.timestamp() for b in breakpoints], dtype=float)
    extra = extra[(extra > start) & (extra < end)]
    bounds = np.unique(np.concatenate([[start], uniform, extra, [end]]))
    if len(bounds) - 1 > MAX_SLOTS:
        raise ValueError(f"the schedules have more than {MAX_SLOTS} breakpoints in the horizon")
    return SlotGrid(starts=bounds[:-1], ends=bounds[1:])
