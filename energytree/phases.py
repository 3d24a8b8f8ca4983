"""1/3-phase switching with EVerest-style hysteresis, for EVSEs that may switch.

Going down to one phase is immediate when three phases at the minimum current do not fit the
budget. Going back up waits until three phases would have fitted, with ``power_hysteresis_w``
to spare, for ``time_hysteresis_s`` without interruption (counted on a monotonic clock, not
on the wall clock as EVerest does). Whichever way, an EVSE switches at most once per
``time_hysteresis_s``; while it waits the reason says until when. ``max_switches`` per session
bounds the wear on cars that dislike switching; a session ends when the EVSE stops wanting
power.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from energytree.allocator import SlotAllocation
    from energytree.problem import Problem

__all__ = ["PhaseSwitcher", "SwitchingOptions", "held_reason"]


@dataclass(frozen=True)
class SwitchingOptions:
    power_hysteresis_w: float = 200.0
    time_hysteresis_s: float = 600.0
    max_switches: int = 0  # 0 = unlimited


@dataclass
class PhaseSwitcher:
    """Remembers each switchable EVSE's phase count, when three phases last fitted, and when
    it last switched (at most one switch per ``time_hysteresis_s``)."""

    options: SwitchingOptions = field(default_factory=SwitchingOptions)
    phases: dict[int, int] = field(default_factory=dict)
    fits_since: dict[int, float] = field(default_factory=dict)
    switches: dict[int, int] = field(default_factory=dict)
    switched_at: dict[int, float] = field(default_factory=dict)
    held_until: dict[int, float] = field(default_factory=dict)

    def choose(self, evse: int, budget_w: float, min_three_w: float, max_phases: int,
               min_phases: int, now_s: float) -> int:
        """Phase count for one EVSE given the power it could get on three phases [W].

        Call it only for an EVSE that is served: a pause (rotation, no budget) says nothing
        about whether three phases would fit.
        """
        if max_phases <= 1 or min_phases >= max_phases:
            return max_phases
        current = self.phases.get(evse, max_phases)
        hold = self.options.time_hysteresis_s
        free_at = self.switched_at.get(evse, -np.inf) + hold
        if budget_w < min_three_w:
            self.fits_since.pop(evse, None)
            wanted, ready_at = min_phases, free_at
        elif budget_w >= min_three_w + self.options.power_hysteresis_w:
            since = self.fits_since.setdefault(evse, now_s)
            wanted, ready_at = max_phases, max(since + hold, free_at)
        else:  # fits, but not with the hysteresis to spare: that interrupts the wait too
            self.fits_since.pop(evse, None)
            wanted, ready_at = current, now_s
        self.held_until.pop(evse, None)
        if wanted != current:
            count = self.switches.get(evse, 0)
            if self.options.max_switches and count >= self.options.max_switches:
                return current
            if now_s < ready_at:
                self.held_until[evse] = ready_at
                wanted = current
            else:
                self.switches[evse] = count + 1
                self.switched_at[evse] = now_s
        self.phases[evse] = wanted
        return wanted

    def held(self, evse: int, now_s: float) -> tuple[int, float] | None:
        """(phases, seconds left) while the EVSE waits to switch, else None."""
        until = self.held_until.get(evse)
        if until is None or until <= now_s or evse not in self.phases:
            return None
        return self.phases[evse], until - now_s

    def forget(self, evse: int) -> None:
        """A session ended: the next one may start on three phases at once."""
        for known in (self.phases, self.fits_since, self.switches, self.switched_at,
                      self.held_until):
            known.pop(evse, None)

    def decide(self, problem: Problem, slot: int, alloc: SlotAllocation, meter_silent: bool,
               now_s: float) -> np.ndarray | None:
        """Phase counts with hysteresis for switchable EVSEs, or None to keep ``alloc``.

        ``alloc`` was made with every EVSE on its most phases where three phases at the
        minimum fit (the allocator drops to one phase otherwise), so its power on three
        phases is the budget the hysteresis compares against. Only served EVSEs decide: a
        rotation pause, a zero budget or the safe current of a silent meter says nothing
        about three phases. The hints are clipped to the slot's phase range.
        """
        if not problem.switchable.any():
            return None
        default = problem.max_phases[:, slot].astype(int)
        deciding = problem.switchable & problem.wants_power & (alloc.current_a > 0)
        for e in np.nonzero(deciding)[0] if not meter_silent else ():
            on_max = alloc.phases[e] == default[e]
            budget = float(alloc.power_w[e]) if on_max else 0.0
            min_max_w = float(problem.min_current_a[e, slot]) * default[e] * problem.voltage_v
            self.choose(int(e), budget, min_max_w, int(default[e]),
                        int(problem.min_phases[e, slot]), now_s)
        hints = np.clip(self.hints(problem.evse_count, default), problem.min_phases[:, slot],
                        default)
        active = alloc.current_a > 0
        if np.array_equal(hints[active], alloc.phases[active]):
            return None
        return hints

    def explain_holds(self, alloc: SlotAllocation, now: datetime, now_s: float) -> None:
        """Add ``phases: held at 1 until 14:05 UTC`` to an EVSE waiting out the hold."""
        for e in range(len(alloc.reasons)):
            held = self.held(e, now_s)
            if held is not None:
                until = now + timedelta(seconds=held[1])
                alloc.reasons[e] = f"{alloc.reasons[e]}; {held_reason(held[0], until)}"

    def hints(self, count: int, default: np.ndarray) -> np.ndarray:
        """Phase counts for the allocator: remembered ones, else ``default``."""
        result = default.copy()
        for evse, phases in self.phases.items():
            if evse < count:
                result[evse] = phases
        return result


def held_reason(phases: int, until: datetime) -> str:
    """The reason shown while an EVSE waits out the hold (``until`` in UTC)."""
    return f"phases: held at {phases} until {until.astimezone(UTC):%H:%M} UTC"
