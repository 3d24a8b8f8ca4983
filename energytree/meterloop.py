"""The grid meter's budget for the EVSEs per phase, as a loop that settles without overshoot.

Every fresh meter reading gives an estimate of what the EVSEs may draw per grid phase::

    budget = limit − margin − (measured − our draw)

where *our draw* is what the EVSEs' own meters report and, for the EVSEs without a fresh
measurement, the least they were granted together during the last ``response_s`` (a car
that follows its limit within that time draws at least that, unless it draws less of its own
accord; assuming less only errs towards the safe side). Taking the estimate at every
reading with *what was granted last* as the cars' draw is what oscillates: a car follows
its limit seconds late, so right after a change the meter still shows the old draw while
the estimate assumes the new one (A[t+1] = L − H + A[t] − A[t−d]).

So the loop acts on each phase, then waits for the cars to answer and the meter to show it
before trusting the meter again (``settle_s``: the cars' response time plus a meter period),
and waits the cars' response time after any rise of an unmetered EVSE's grant too (the
allocator admitting a car, say: its answer is no household step):

* settled: the budget becomes the estimate (down at once, up in one step);
* while waiting: the budget only goes down: to the estimate made with the *most* each EVSE
  was granted meanwhile (a car still drawing its old limit is then no reason to cut twice),
  and by what the meter shows *beyond* what was expected when it last acted (the reading
  then, or the limit after raising). A household step is news, and is cut at once; where
  it puts the meter past the limit, at least to the estimate with the *least* granted (the
  cars may already draw that: counting the most would take part of the step for ours).
  What the EVSEs are offered meanwhile (``offer_a``) rises no further than the estimate
  with the least granted (or stays at what is granted, if that is more): a cut car
  without a meter may have drawn less than its grant, so the room its cut seems to free
  may never have been there.

With every EVSE measured the estimate does not depend on what was granted, so there is no loop
through the cars at all; the wait then only spaces the raises. See docs/semantics.md.

A car without its own meter that draws less than its grant (a 1-phase car on a 3-phase EVSE,
a car limited by its own charger) makes the household look smaller by the difference. While
it charges that is mostly harmless: its grant holds the room. But the EVSEs without a
measurement drew at most what the meter showed beyond the measured ones at the previous
reading; where that reading came after the cars answered the last rise of their grants,
that bounds *our draw* too (a cut since then only lowers what they draw). Otherwise a
household step would be cut from grants the cars do not take, which frees nothing, and the
overload would last until the grants fall below the draws, one settling time per step.
(While the cars still answer a rise, their answer moves the meter between readings, and the
bound would turn it into a cut. Waiting after a cut as well made a cycle: the bound cut the
grants, the cut suspended the bound, the budget rose again.)

When such a car stops of its own accord (it leaves, finishes or pauses), its grant must not
be handed on before the meter shows what is really free, so ``released`` takes the last
reading again as if it had been granted nothing, and forgets its grants for the readings to
come: the meter still shows what it really drew, so its room waits for the meter. When it
starts again of its own accord, its draw comes back without a new grant; the loop counts
what the car is taken to draw (the least of its recent offers) from then on (``resumed``),
or the draw would look like a household step and cut everyone, the car would pause again,
and the budget would swing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["MeterLoop"]

NEWS_A = 0.5  # [A] a reading must exceed the expected value by this much to count as news


@dataclass(frozen=True)
class Reading:
    """The last meter reading, as the loop used it."""

    limit_a: np.ndarray  # [3] the limit less the margin
    beyond_a: np.ndarray  # [3] all the meter showed beyond the measured EVSEs
    unmeasured: np.ndarray  # [N] bool: the EVSEs without a fresh measurement
    at_s: float


@dataclass
class MeterLoop:
    """The EVSEs' budget per grid phase [A]; ``reset`` when the meter goes silent."""

    response_s: float = 6.0  # [s] a car draws what it was granted at most this long ago
    meter_period_s: float = 3.0  # [s] the grid meter answers at least this often
    budget_a: np.ndarray | None = None
    rise_cap_a: np.ndarray = field(default_factory=lambda: np.full(3, np.inf))
    acted_at_s: np.ndarray = field(default_factory=lambda: np.full(3, -np.inf))
    expected_a: np.ndarray = field(default_factory=lambda: np.zeros(3))
    _grants: deque[tuple[float, np.ndarray]] = field(default_factory=deque)
    _last: Reading | None = None
    _raised_at_s: np.ndarray = field(default_factory=lambda: np.full((0, 3), -np.inf))

    @property
    def settle_s(self) -> float:
        """How long after acting the meter may still show the cars' old draw [s]."""
        return self.response_s + self.meter_period_s

    @property
    def offer_a(self) -> np.ndarray | None:
        """What the EVSEs may be granted now per phase: the budget, but while the loop waits,
        no rise beyond what the estimate with the least granted leaves."""
        return None if self.budget_a is None else np.minimum(self.budget_a, self.rise_cap_a)

    def reset(self) -> None:
        self.budget_a = None
        self.rise_cap_a = np.full(3, np.inf)
        self.acted_at_s = np.full(3, -np.inf)
        self._last = None

    def granted(self, grant_a: np.ndarray, now_s: float) -> None:
        """What each EVSE was granted this tick per grid phase, [N, 3] [A]."""
        if self._raised_at_s.shape != grant_a.shape:  # another tree
            self._grants.clear()
            self._raised_at_s = np.full(grant_a.shape, -np.inf)
        if self._grants:  # when each EVSE's grant last rose, per phase
            raised = grant_a > self._grants[-1][1] + NEWS_A
            self._raised_at_s = np.where(raised, now_s, self._raised_at_s)
        self._grants.append((now_s, grant_a))
        while len(self._grants) > 1 and self._grants[0][0] < now_s - self.response_s:
            self._grants.popleft()

    def resumed(self, evse: int, grant_a: np.ndarray) -> None:
        """EVSE ``evse`` draws again (its car resumed of its own accord): count ``grant_a``
        [3] as what it was granted throughout the response time."""
        for _, grants in self._grants:
            if evse < len(grants):
                grants[evse] = grant_a
        if self._last is not None:  # and as part of what the meter showed last
            self._last = replace(self._last, beyond_a=self._last.beyond_a + grant_a)

    def released(self, evse: int, now_s: float) -> None:
        """EVSE ``evse`` (its index in the grants) stopped drawing of its own accord: unless
        its draw was measured, the budget falls to the last reading taken without its grant,
        and its grants are forgotten, so the next readings do not take them back."""
        if self.budget_a is None or self._last is None:
            return
        last = self._last
        if evse >= len(last.unmeasured) or not last.unmeasured[evse]:
            return
        for _, grants in self._grants:
            if evse < len(grants):
                grants[evse] = 0.0
        least, _ = self._granted_range(last.unmeasured, now_s)
        self.budget_a = np.minimum(self.budget_a,
                                   np.maximum(last.limit_a - last.beyond_a + least, 0.0))

    def _granted_range(self, unmeasured: np.ndarray, now_s: float
                       ) -> tuple[np.ndarray, np.ndarray]:
        """The least and the most granted per phase to the ``unmeasured`` EVSEs together
        during the last ``response_s`` (at least the last grant) [A]."""
        recent = [g for t, g in self._grants if t >= now_s - self.response_s]
        sums = [g[unmeasured].sum(axis=0) for g in recent or [self._grants[-1][1]]
                if len(g) == len(unmeasured)] if self._grants else []
        if not sums:
            return np.zeros(3), np.zeros(3)
        return np.min(sums, axis=0), np.max(sums, axis=0)

    def _raised_since(self, unmeasured: np.ndarray) -> np.ndarray:
        """When the grant of an ``unmeasured`` EVSE last rose, per phase (+inf: unknown)."""
        if len(unmeasured) != len(self._raised_at_s):
            return np.full(3, np.inf)
        return self._raised_at_s[unmeasured].max(axis=0, initial=-np.inf)

    def reading(self, limit_a: np.ndarray, measured_a: np.ndarray, measured_ours_a: np.ndarray,
                unmeasured: np.ndarray, now_s: float) -> np.ndarray:
        """Take one fresh reading [A per phase]: the limit less the margin, the meter, what the
        EVSEs with a fresh measurement draw, and which EVSEs have none [N bool]."""
        least, most = self._granted_range(unmeasured, now_s)
        household = measured_a - measured_ours_a  # and what the unmeasured EVSEs draw
        if self._last is not None:
            # taken once the cars had answered the last rise of their grants (a cut only
            # lowers what they draw, so the bound holds through it)
            answered = self._last.at_s - self._raised_since(unmeasured) >= self.response_s
            least = np.where(answered, np.minimum(least, self._last.beyond_a), least)
        self._last = Reading(limit_a, household, unmeasured, now_s)
        estimate = np.maximum(limit_a - household + least, 0.0)
        if self.budget_a is None:
            self.budget_a = estimate
            self.acted_at_s = np.full(3, now_s)
            self.expected_a = np.maximum(measured_a, limit_a)
            return self.budget_a.copy()
        budget = self.budget_a.copy()
        # the cars answer a rise of their own grants as they answer the loop's acting
        settled = (now_s - self.acted_at_s >= self.settle_s) & (
            now_s - self._raised_since(unmeasured) >= self.response_s)
        news = ~settled & (measured_a > self.expected_a + NEWS_A)
        cut = np.where(news, budget - (measured_a - self.expected_a), budget)
        cut = np.maximum(np.minimum(cut, limit_a - household + most), 0.0)
        # past the limit, the cars may already draw the least they were granted: counting
        # the most would take part of the household step for ours and cut too little
        over = news & (measured_a > limit_a + NEWS_A)
        cut = np.where(over, np.minimum(cut, estimate), cut)
        new = np.where(settled, estimate, np.minimum(budget, cut))
        news |= ~settled & (new < budget - NEWS_A)
        acted = (settled & (np.abs(new - budget) > NEWS_A)) | news
        # after acting, what the meter should show once the cars answered: the limit when
        # raising or cutting to the estimate, the reading itself while the cars still answer
        self.expected_a = np.where(acted, np.maximum(measured_a, limit_a), self.expected_a)
        self.expected_a = np.where(news, measured_a, self.expected_a)
        self.acted_at_s = np.where(acted, now_s, self.acted_at_s)
        self.budget_a = new
        # while waiting, the cars may not have answered yet, so the estimate with the least
        # granted is no reason to cut (that would cut twice); but it is all the room a rise
        # may take: a cut car without a meter may have drawn less than its grant all along,
        # and the room its cut seemed to free was never there
        granted = self._grants[-1][1].sum(axis=0) if self._grants else np.zeros(3)
        self.rise_cap_a = np.where(settled, np.inf, np.maximum(estimate, granted))
        return new.copy()
