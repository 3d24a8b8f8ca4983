"""What the tick learns from what flows: EVSE measurements, cars' phases, the meter loop, lending.

The manager owns one ``Feedback``; it feeds it every EVSE measurement and grid-meter reading
and asks it, each tick, for the problem with the cars' measured phases, the grid meter's
budget, the caps of EVSEs that lend unused allowance, and to record what was granted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from energytree.allocator import LiveCap, SlotAllocation
from energytree.carminimum import MinimumLearner
from energytree.drawn import Drawn, PhaseLearner, active_phases, drawn_from
from energytree.lending import Lending
from energytree.livecaps import connection_a, granted_per_phase, our_draw
from energytree.meterloop import MeterLoop
from energytree.problem import Problem, with_car_minimums, with_car_phases
from energytree.ramps import RampLimiter
from energytree.status import MeterFeed
from energytree.types import Powermeter

__all__ = ["Feedback", "FeedbackOptions"]


@dataclass(frozen=True)
class FeedbackOptions:
    response_s: float = 6.0  # cars draw what they were granted at most this long ago
    meter_period_s: float = 3.0  # the grid meter answers at least this often
    measurement_fresh_s: float = 5.0  # an EVSE measurement this old still tells its draw
    installation_max_a: float | None = None  # what the grid meter's phases may carry
    meter_margin_a: float = 1.0


@dataclass
class Feedback:
    """The measured side of the live tick (see the module docstring)."""

    options: FeedbackOptions = field(default_factory=FeedbackOptions)
    drawn: dict[str, Drawn] = field(default_factory=dict)
    learner: PhaseLearner = field(default_factory=PhaseLearner)
    minimums: MinimumLearner = field(default_factory=MinimumLearner)
    learned_version: int = 0
    meter_fresh: bool = False
    _offered: dict[int, tuple[int, float]] = field(default_factory=dict)
    _last_grant: tuple[Problem, SlotAllocation] | None = None  # the last tick's
    _phased: tuple[tuple[int, int, int], Problem] | None = None

    def __post_init__(self) -> None:
        self.loop = MeterLoop(self.options.response_s, self.options.meter_period_s)
        self.lending = Lending(self.options.response_s)
        self.ramps = RampLimiter(self.options.response_s)

    # ---- inputs ---------------------------------------------------------------------------

    def measure(self, uuid: str, evse: int, meter: Powermeter, now_s: float) -> bool:
        """Keep one EVSE measurement; True when the car's phases changed (re-plan)."""
        drawn = drawn_from(meter, now_s)
        self.drawn[uuid] = drawn
        if drawn.current_a is None:
            return False
        changed = self.learner.observe(uuid, drawn.current_a, self._offered_phases(evse, now_s))
        self.learned_version += changed
        return changed

    def car_stopped(self, evse: int, now_s: float) -> None:
        """The car at EVSE ``evse`` left, finished or paused by itself: its room is free only
        once the meter shows it (``MeterLoop.released``)."""
        self.loop.released(evse, now_s)

    def car_refused(self, problem: Problem, evse: int, slot: int) -> float | None:
        """The car at EVSE ``evse`` paused by itself: it may need more than it was offered
        (``energytree.carminimum``). Its report may answer any offer of the last response
        time, so the least of them counts. The minimum it now gets, if new."""
        last, least = self._last_grant, self.ramps.least_offer(evse)
        if last is None or last[0] is not problem or slot >= problem.slots or least is None:
            return None
        uuid, offered = problem.evse_uuids[evse], float(least.max())
        if self.minimums.refused(uuid, offered, float(problem.min_current_a[evse, slot]),
                                 float(problem.evse_cap_a[0][evse, slot])):
            return self.minimums.minimum_a[uuid]
        return None

    def car_resumed(self, evse: int) -> None:
        """The car at EVSE ``evse`` charges again after pausing by itself: it draws at least
        the least of its recent offers from now on (``MeterLoop.resumed``); it may be answering
        an older, lower one than its last grant."""
        least = self.ramps.least_offer(evse)
        if least is not None:
            self.loop.resumed(evse, least)

    def session_ended(self, uuid: str) -> None:
        """The next car at this EVSE starts from configuration again."""
        self.learned_version += self.learner.forget(uuid)
        self.minimums.forget(uuid)

    def meter_reading(self, feed: MeterFeed) -> None:
        """A new grid-meter reading (or silence, which restarts the loop)."""
        self.meter_fresh = feed.current_a is not None
        if not self.meter_fresh:
            self.loop.reset()

    # ---- what the tick asks -------------------------------------------------------------------

    def fresh_since(self, now_s: float) -> float:
        """Measurements that arrived after this (monotonic) still tell what an EVSE draws."""
        return now_s - self.options.measurement_fresh_s

    def with_cars(self, problem: Problem) -> Problem:
        """``problem`` with what the cars showed (cached): each budgeted on the phases it was
        measured on, and at the minimum current it was seen to need."""
        key = (id(problem), self.learned_version, self.minimums.version)
        if self._phased is None or self._phased[0] != key:
            index = {uuid: e for e, uuid in enumerate(problem.evse_uuids)}
            phased = with_car_phases(problem, self.learner.by_index(index))
            self._phased = key, with_car_minimums(phased, self.minimums.by_index(index))
        return self._phased[1]

    def meter_budget(self, problem: Problem, now: datetime, meter: MeterFeed | None,
                     now_s: float) -> np.ndarray | None:
        """The meter loop's budget per grid phase; a fresh reading moves it (``meterloop``)."""
        if meter is None or meter.current_a is None:
            return None
        if self.meter_fresh:
            self.meter_fresh = False
            options = self.options
            limit = connection_a(problem, now) if options.installation_max_a is None \
                else np.full(3, options.installation_max_a)
            measured, fresh = our_draw(problem, self.drawn, self.fresh_since(now_s))
            self.loop.reading(limit - options.meter_margin_a, np.asarray(meter.current_a),
                              measured, ~fresh, now_s)
        return self.loop.offer_a

    def lend_caps(self, problem: Problem, caps: np.ndarray | None,
                  last: SlotAllocation | None, now_s: float) -> np.ndarray | None:
        """The plan's caps with lenders capped at their draw; what the plan meant for them
        goes to the EVSEs it charges now (those it pauses stay paused)."""
        lent = self.lending.caps(problem, self.drawn, self.fresh_since(now_s), last, now_s)
        if lent is None:
            return caps
        if caps is None:
            return lent
        return np.where(np.isfinite(lent), np.minimum(caps, lent),
                        np.where(caps > 0, np.inf, 0.0))

    def share_live(self, problem: Problem, caps: np.ndarray) -> np.ndarray:
        """The plan's caps lifted for every EVSE it charges now (lenders keep theirs): for
        when the live budget cannot serve all it charges. Its shares counted on all of them;
        kept, they would leave unused what the EVSEs left out would have had."""
        lenders = np.array([uuid in self.lending.caps_a for uuid in problem.evse_uuids])
        return np.where((caps > 0) & ~lenders, np.inf, caps)

    def granted(self, problem: Problem, slot: int, alloc: SlotAllocation,
                live: Sequence[LiveCap], last: SlotAllocation | None, now_s: float,
                with_meter: bool, car_stopped: np.ndarray, charging: np.ndarray) -> None:
        """Finish a tick's allocation (lending reasons, rises held back to the room now) and
        remember what was offered. A car that stopped by itself (``car_stopped``: it left or
        finished, or says it pauses — EVerest's PausedEV, OCPP's SuspendedEV) draws nothing of
        its grant: the meter loop must not take its grant for part of our draw, or the
        household looks that much smaller than it is. Only a ``charging`` car keeps its
        minimum while others follow their cut; any other waits until its minimum fits."""
        self.lending.explain(problem, alloc, self.drawn)
        self.ramps.limit(problem, slot, alloc, live, self.drawn, self.fresh_since(now_s),
                         now_s, charging)
        self._last_grant = problem, alloc  # the grants per phase only when a car asks
        if with_meter:
            drawing = granted_per_phase(problem, alloc)
            drawing[car_stopped] = 0.0
            self.loop.granted(drawing, now_s)
        offered = np.where(alloc.current_a > 0, alloc.phases, 0).tolist()
        for e, phases in enumerate(offered):
            if self._offered.get(e, (0, 0.0))[0] != phases:
                self._offered[e] = (phases, now_s)

    def drawn_status(self, uuid: str, voltage_v: float) -> tuple[int | None, float | None]:
        """(phases the car was last measured on, what it drew [W]) for the status."""
        drawn = self.drawn.get(uuid)
        if drawn is None:
            return None, None
        phases = None if drawn.current_a is None else len(active_phases(drawn.current_a))
        return phases, drawn.total_power_w(voltage_v)

    def _offered_phases(self, evse: int, now_s: float) -> int:
        """The phases offered to an EVSE long enough for its car to follow (0: unsettled)."""
        phases, since = self._offered.get(evse, (0, now_s))
        return phases if now_s - since >= self.options.response_s else 0
