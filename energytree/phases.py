"""1/3-phase switching with EVerest-style hysteresis, for EVSEs that may switch.

Going down to one phase is immediate when three phases at the minimum current do not fit the
budget. Going back up waits until three phases would have fitted, with ``power_hysteresis_w``
to spare, for ``time_hysteresis_s`` without interruption (counted on a monotonic clock, not
on the wall clock as EVerest does). ``max_switches`` per session bounds the wear on cars that
dislike switching; a session ends when the EVSE stops wanting power.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PhaseSwitcher", "SwitchingOptions"]


@dataclass(frozen=True)
class SwitchingOptions:
    power_hysteresis_w: float = 200.0
    time_hysteresis_s: float = 600.0
    max_switches: int = 0  # 0 = unlimited


@dataclass
class PhaseSwitcher:
    """Remembers each switchable EVSE's phase count and when three phases last fitted."""

    options: SwitchingOptions = field(default_factory=SwitchingOptions)
    phases: dict[int, int] = field(default_factory=dict)
    fits_since: dict[int, float] = field(default_factory=dict)
    switches: dict[int, int] = field(default_factory=dict)

    def choose(self, evse: int, budget_w: float, min_three_w: float, max_phases: int,
               min_phases: int, now_s: float) -> int:
        """Phase count for one EVSE given the power it could get on three phases [W]."""
        if max_phases <= 1 or min_phases >= max_phases:
            return max_phases
        current = self.phases.get(evse, max_phases)
        if budget_w < min_three_w:
            self.fits_since.pop(evse, None)
            wanted = min_phases
        elif budget_w >= min_three_w + self.options.power_hysteresis_w:
            since = self.fits_since.setdefault(evse, now_s)
            held = now_s - since >= self.options.time_hysteresis_s
            wanted = max_phases if current == max_phases or held else current
        else:  # fits, but not with the hysteresis to spare: that interrupts the wait too
            self.fits_since.pop(evse, None)
            wanted = current
        if wanted != current:
            count = self.switches.get(evse, 0)
            if self.options.max_switches and count >= self.options.max_switches:
                return current
            self.switches[evse] = count + 1
        self.phases[evse] = wanted
        return wanted

    def forget(self, evse: int) -> None:
        """A session ended: the next one may start on three phases at once."""
        self.phases.pop(evse, None)
        self.fits_since.pop(evse, None)
        self.switches.pop(evse, None)

    def hints(self, count: int, default: np.ndarray) -> np.ndarray:
        """Phase counts for the allocator: remembered ones, else ``default``."""
        result = default.copy()
        for evse, phases in self.phases.items():
            if evse < count:
                result[evse] = phases
        return result
