"""The live energy manager: holds the tree and everything that changes, plans, and enforces.

Every tick (default 1 s) it takes the plan's value for the current slot, applies the live facts
(external limits in force now, what the grid meter leaves, formulas) through the instant
allocator, and publishes ``EnforcedLimits`` valid for ``valid_ticks`` ticks. A full re-plan runs
in a worker thread, with a time budget, whenever targets, prices, external schedules, plugged
state or the tree change, and at slot boundaries; ticks never wait for it.

Embedding::

    manager = EnergyManager(request, planner=optimise)
    async with manager:
        manager.set_target("evse-1", OptimizerTarget(energy_amount_needed=20))
        async for limits in manager.subscribe():
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from energytree.allocator import LiveCap, SlotAllocation, allocate_slot
from energytree.clock import Clock, SystemClock
from energytree.errors import ConfigError, RequestError
from energytree.feedback import Feedback, FeedbackOptions
from energytree.leases import LeaseBook
from energytree.livecaps import caps_on_phases, live_caps, reserved_allocation
from energytree.phases import PhaseSwitcher, SwitchingOptions
from energytree.plan import Plan, Planner, instant_plan
from energytree.problem import (
    NOT_WANTING_POWER,
    ExternalSource,
    PlanOptions,
    Problem,
    build_problem,
)
from energytree.publisher import Publisher
from energytree.statefile import load_state, save_state
from energytree.status import EvseStatus, MeterFeed, SourceStatus, Status
from energytree.targets import has_goal
from energytree.tasks import cancel_and_wait
from energytree.tree import Tree
from energytree.types import (
    EnergyFlowRequest,
    EnforcedLimits,
    EvseState,
    ExternalLimits,
    OptimizerTarget,
    Powermeter,
    PricePerKwh,
    ScheduleResEntry,
)

__all__ = ["EnergyManager", "ManagerOptions", "MeterFeed", "Status"]

log = logging.getLogger(__name__)
TreeSource = Callable[[datetime], EnergyFlowRequest]
LiveSources = Callable[[datetime], Sequence[ExternalSource]]
CAR_STOPPED = NOT_WANTING_POWER | {EvseState.PausedEV}  # states in which a car draws nothing
CHARGING_OR_UNKNOWN = {EvseState.Charging, None}  # a car that may be drawing by itself


@dataclass(frozen=True)
class ManagerOptions:
    tick_s: float = 1.0
    valid_ticks: int = 10
    plan: PlanOptions = field(default_factory=PlanOptions)
    plan_budget_s: float = 2.0
    rotation_period_s: float = 900.0
    safe_current_a: float = 6.0  # per phase for all EVSEs together while the meter is silent
    installation_max_a: float | None = None  # what the grid meter's phases may carry
    meter_margin_a: float = 1.0
    response_s: float = 6.0  # cars draw what they were granted at most this long ago
    meter_period_s: float = 3.0  # the grid meter answers at least this often
    measurement_fresh_s: float = 5.0  # an EVSE measurement this old still tells its draw
    switching: SwitchingOptions = field(default_factory=SwitchingOptions)
    replan_quiet_s: float = 0.25  # a re-plan waits for this long without further changes …
    replan_max_delay_s: float = 2.0  # … but never longer than this


@dataclass
class _Live:
    """What the outside world has told us since the last plan."""

    states: dict[str, EvseState] = field(default_factory=dict)
    measurements: dict[str, Powermeter] = field(default_factory=dict)
    targets: dict[str, OptimizerTarget | None] = field(default_factory=dict)
    prices: list[PricePerKwh] = field(default_factory=list)


class EnergyManager:
    """See the module docstring; every public method is safe to call from the event loop."""

    def __init__(
        self,
        tree: EnergyFlowRequest | TreeSource,
        *,
        planner: Planner = instant_plan,
        clock: Clock | None = None,
        options: ManagerOptions | None = None,
        state_path: Path | None = None,
        live_sources: LiveSources | None = None,
        has_meter: bool = False,
        tick_observer: Callable[[float], None] | None = None,
    ) -> None:
        self._tree_source: TreeSource = tree if callable(tree) else (lambda _now: tree)
        self._planner = planner
        self._clock = clock or SystemClock()
        self.options = options or ManagerOptions()
        self._state_path = state_path
        self._live_sources = live_sources or (lambda _now: [])
        self._tick_observer = tick_observer  # told each loop tick's duration [s] (metrics)
        self._leases = LeaseBook.empty()
        self._live = _Live()
        self._meter: MeterFeed | None = MeterFeed(None, None, "INITIALIZING") if has_meter else None
        self._switcher = PhaseSwitcher(self.options.switching)
        o = self.options
        self._feedback = Feedback(FeedbackOptions(
            o.response_s, o.meter_period_s, o.measurement_fresh_s, o.installation_max_a,
            o.meter_margin_a))
        self._problem: Problem | None = None
        self._plan: Plan | None = None
        self._schedules: list[list[ScheduleResEntry]] = []
        self._planned_at: datetime | None = None
        self._last_live_key: tuple = ()
        self._publisher = Publisher(self.options.tick_s, self.options.valid_ticks)
        self._last_alloc: SlotAllocation | None = None
        self._shares_lifted = -1  # the plan version whose shares gave way to the live budget
        self._admitted: set[str] = set()  # the EVSEs the last tick admitted
        self._alloc_problem: Problem | None = None  # the problem _last_alloc was made for
        self._dirty = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._tree_version = 0  # a plan for an older tree is not used
        self._plans_started = 0  # a re-plan that started before the plan in force is dropped
        self._plan_started = 0
        self.plan_version = 0  # counts the plans put in force
        self._reservations: dict[str, ExternalLimits] = {}
        self._load_state()

    # ---- inputs -------------------------------------------------------------------------

    def submit_request(self, request: EnergyFlowRequest) -> None:
        """Replace the tree (a charger stack publishes its EnergyFlowRequest).

        The next tick already enforces the new tree's limits (without a plan until the
        re-plan finishes); a request that does not fit (e.g. a lease's node is gone) is
        refused and changes nothing.
        """
        previous = self._tree_source
        self._tree_source = lambda _now: request
        try:
            problem = self._build_problem(self._clock.now(), None)
        except BaseException:
            self._tree_source = previous
            raise
        self._tree_version += 1
        self._problem, self._plan, self._schedules = problem, None, []
        self._changed(replan=True)

    def set_evse_state(self, uuid: str, state: EvseState) -> None:
        evse = self._evse(uuid)
        before = self._live.states.get(uuid)
        if before != state:
            self._live.states[uuid] = state
            if state in CAR_STOPPED and before not in CAR_STOPPED:
                self._feedback.car_stopped(evse, self._clock.monotonic())
            if state == EvseState.PausedEV:
                self._car_refused(evse)
            elif before == EvseState.PausedEV and state == EvseState.Charging:
                self._feedback.car_resumed(evse)
            if state in (EvseState.Unplugged, EvseState.Finished):
                self._switcher.forget(self._evse(uuid))
                self._feedback.session_ended(uuid)
            self._changed(replan=True)

    def report_measurement(self, uuid: str, meter: Powermeter) -> None:
        """What one EVSE's own meter measures now (EVerest's ``powermeter`` type).

        Read are ``current_A.L1/L2/L3`` — amperes on the EVSE's own phases, which its
        ``phase_rotation`` maps to grid phases —, ``power_W.total`` [W] and
        ``energy_Wh_import.total`` [Wh]; the other fields and ``timestamp`` are kept as given.
        While fresh (``measurement_fresh_s``) the currents are the EVSE's share of the grid
        meter's reading, and the phases its car draws on are learned for the session (until
        the EVSE reports Unplugged or Finished): a car on one phase is then budgeted and
        planned on that grid phase alone. Unknown uuid: ``NotFoundError``, nothing changes.
        """
        e = self._evse(uuid)
        self._live.measurements[uuid] = meter
        if self._feedback.measure(uuid, e, meter, self._clock.monotonic()):
            self._changed(replan=True)

    def set_target(self, uuid: str, target: OptimizerTarget | None) -> None:
        """Set (or with None clear) the optimizer target of one EVSE."""
        self._evse(uuid)
        self._live.targets[uuid] = target
        self._save_state()
        self._changed(replan=True)

    async def submit_target(self, uuid: str, target: OptimizerTarget) -> Plan | None:
        """Set a target and plan with it now: the answer (and GetStatus) shows its effect."""
        self.set_target(uuid, target)
        await self.replan()
        self.tick()
        return self._plan

    def battery_kwh(self, uuid: str) -> float | None:
        """The battery capacity known for an EVSE's car (site file or its request), if any."""
        self._evse(uuid)
        stack = [self._tree_source(self._clock.now())]
        while stack:
            node = stack.pop()
            if node.uuid == uuid:
                target = node.optimizer_target
                return None if target is None else target.car_battery_capacity_kWh
            stack.extend(node.children)
        return None  # pragma: no cover - _evse found it

    def set_prices(self, prices: Sequence[PricePerKwh]) -> None:
        self._live.prices = sorted(prices, key=lambda p: p.timestamp)
        self._save_state()
        self._changed(replan=True)

    def set_external_limits(self, name: str, node_uuid: str, limits: ExternalLimits,
                            ttl_s: float | None = None,
                            failsafe: ExternalLimits | None = None,
                            own_failsafe: bool = False) -> None:
        """Install or renew the external-limit source ``name`` on a node (a lease);
        ``own_failsafe``: the limits are the source's failsafe (status shows it)."""
        self._node(node_uuid)
        self._leases.set(name, node_uuid, limits, self._clock.now(), ttl_s, failsafe,
                         own_failsafe)
        self._save_state()
        self._changed(replan=True)

    def clear_external_limits(self, name: str) -> bool:
        cleared = self._leases.clear(name)
        if cleared:
            self._save_state()
            self._changed(replan=True)
        return cleared

    def reserve(self, uuid: str, name: str, limits: ExternalLimits | None) -> None:
        """Hold capacity for an EVSE that draws without our say (an offline charger).

        ``limits`` gives, over time, the current it may be drawing (``ac_max_current_A``). The
        tick grants it exactly that before anybody else is served — rotation never skips it —
        and the plan sees it as an external source ``name`` on the EVSE. None releases it.
        """
        self._evse(uuid)
        if limits is None:
            self._reservations.pop(uuid, None)
            self.clear_external_limits(name)
            return
        self._reservations[uuid] = limits
        self.set_external_limits(name, uuid, limits)

    def report_grid_meter(self, feed: MeterFeed) -> None:
        """A new grid-meter reading, or a change of its communication state."""
        if self._meter is None:
            raise ConfigError("this manager was built without a grid meter")
        was_healthy = self._meter.current_a is not None
        self._meter = feed
        self._feedback.meter_reading(feed)
        if was_healthy != (feed.current_a is not None):
            self._changed(replan=False)

    def notify(self) -> None:
        """Something the live sources read (e.g. a variable) changed: apply it now."""
        self._changed(replan=True)

    # ---- outputs ------------------------------------------------------------------------

    @property
    def enforced_limits(self) -> list[EnforcedLimits]:
        return list(self._publisher.limits)

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def plan(self) -> Plan | None:
        return self._plan

    @property
    def leases(self) -> LeaseBook:
        return self._leases

    @property
    def prices(self) -> list[PricePerKwh]:
        return list(self._live.prices)

    def add_listener(self, callback: Callable[[list[EnforcedLimits]], None]) -> None:
        self._publisher.add_listener(callback)

    def remove_listener(self, callback: Callable[[list[EnforcedLimits]], None]) -> None:
        self._publisher.remove_listener(callback)

    def evse_state(self, uuid: str) -> EvseState | None:
        """The EVSE's state as last reported (or as its request says)."""
        index = self._evse(uuid)
        problem = self._problem
        request = problem.tree.evses[index].request if problem is not None else None
        return self._live.states.get(uuid, request.evse_state if request else None)

    def measurement(self, uuid: str) -> Powermeter | None:
        """The EVSE's meter as last reported."""
        self._evse(uuid)
        return self._live.measurements.get(uuid)

    def car_phases(self, uuid: str) -> tuple[int, ...] | None:
        """The EVSE phases (0..2) this session's car was measured drawing on, or None."""
        self._evse(uuid)
        return self._feedback.learner.car_phases.get(uuid)

    @property
    def subscribers(self) -> int:
        """How many ``subscribe()`` iterators are open (e.g. gRPC watchers)."""
        return self._publisher.subscribers

    def subscribe(self) -> AsyncIterator[list[EnforcedLimits]]:
        """The limits in force now, then every later publication (latest wins if slow)."""
        return self._publisher.subscribe()

    def status(self) -> Status:
        now = self._clock.now()
        plan, alloc, problem = self._plan, self._last_alloc, self._alloc_problem
        evses = []
        if problem is not None and alloc is not None:  # as of the last tick (tree included)
            same = plan is not None and plan.problem.evse_count == problem.evse_count
            planned = plan.energy_kwh() if plan and same else np.zeros(problem.evse_count)
            short = plan.shortfall_kwh() if plan and same else np.zeros(problem.evse_count)
            for e, node in enumerate(problem.tree.evses):
                state = self._live.states.get(node.uuid, node.request.evse_state)
                phases, drawn_w = self._feedback.drawn_status(node.uuid, problem.voltage_v)
                target = node.request.optimizer_target  # without a goal it only bounds the plan
                evses.append(EvseStatus(
                    node.uuid, None if state is None else str(state), float(alloc.current_a[e]),
                    int(alloc.phases[e]), float(alloc.power_w[e]), alloc.reasons[e],
                    target if has_goal(target) else None,
                    float(planned[e]), float(short[e]), phases, drawn_w))
        reasons = " ".join(x.reason for x in evses)
        sources = [SourceStatus.of_lease(x, now, reasons) for x in self._leases.leases.values()]
        return Status(now, evses, sources, self._meter, plan.method if plan else "none",
                      plan.notes if plan else [], self._planned_at)

    def preview(self, targets: dict[str, OptimizerTarget | None]) -> Plan:
        """What-if: plan with these targets without applying them."""
        for uuid in targets:
            self._evse(uuid)
        problem = self._feedback.with_cars(self._build_problem(self._clock.now(), targets))
        return self._planner(problem, rotation=self._rotation(self._clock.now()))

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Plan once, publish the first limits, then run the tick and re-plan loops."""
        # The planner thread runs Python too; a short switch interval keeps it from holding
        # the interpreter lock for 5 ms at a time while the event loop waits to publish.
        sys.setswitchinterval(0.0005)
        await self.replan()
        self.tick()
        self._tasks = [asyncio.create_task(self._tick_loop(), name="energytree-tick"),
                       asyncio.create_task(self._plan_loop(), name="energytree-plan")]

    async def stop(self) -> None:
        """Cancel the loops and wait until they have ended."""
        await cancel_and_wait(self._tasks)
        self._tasks = []

    async def __aenter__(self) -> EnergyManager:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def replan(self) -> None:
        """Build the problem and plan in a worker thread; on a timeout keep the site safe."""
        self._dirty.clear()
        now = self._clock.now()
        version = self._tree_version
        self._plans_started += 1
        started = self._plans_started
        budget = self.options.plan_budget_s
        try:
            problem = await asyncio.to_thread(self._build_problem, now, None)
            phased = self._feedback.with_cars(problem)
            async with asyncio.timeout(2 * budget + 5):
                plan, schedules = await asyncio.to_thread(self._make_plan, phased, now)
        except TimeoutError:
            log.error("re-plan did not finish within %.1f s; the instant allocator takes over",
                      2 * budget + 5)
            self._plan, self._schedules = None, []
            return
        except RequestError as exc:
            log.error("cannot plan: %s", exc)
            return
        if version != self._tree_version or started < self._plan_started:
            return  # the tree changed while planning, or a later re-plan is in force
        self._plan_started = started
        self.plan_version += 1
        self._problem, self._plan, self._schedules = problem, plan, schedules
        self._planned_at = now
        self._last_live_key = self._live_key(now)
        log.info("planned %d EVSEs with %s", problem.evse_count, plan.method)

    def tick(self) -> list[EnforcedLimits]:
        """Compute and publish the limits that apply now (no solver involved)."""
        now = self._clock.now()
        raw = self._problem
        if raw is None:
            raw = self._problem = self._build_problem(now, None)
        if now >= raw.grid.start_time(0) + timedelta(seconds=raw.grid.durations_s[0]):
            self._dirty.set()  # a slot boundary passed
        problem = self._feedback.with_cars(raw)
        slot = problem.grid.index_at(now)
        plan = self._plan
        sources = self._sources(now)
        live = self._live_caps(problem, now, sources)
        if self._live_key(now, sources) != self._last_live_key:
            self._dirty.set()
            plan = None  # planned under other limits: share the live ones until the re-plan
        caps = None if plan is None else np.abs(plan.current_a[:, slot])
        now_s = self._clock.monotonic()
        caps = self._feedback.lend_caps(problem, caps, self._last_alloc, now_s)
        rotation = self._rotation(now)
        fixed = reserved_allocation(problem, slot, now, self._reservations)
        meter_silent = self._meter is not None and self._feedback.loop.budget_a is None
        # a budget the meter moves wavers: joining the served then needs room to spare
        metered = self._meter is not None and not meter_silent
        served = self._served(problem) if metered else None
        def share(caps: np.ndarray | None, phases: np.ndarray | None = None) -> SlotAllocation:
            return allocate_slot(problem, slot, rotation=rotation, evse_cap_a=caps,
                                 evse_cap_label="plan", live_caps=live, phases=phases,
                                 fixed=fixed, hold_phases=phases is not None, served=served)

        if caps is not None and self._shares_lifted == self.plan_version:
            caps = self._feedback.share_live(problem, caps)
        alloc = share(caps)
        if caps is not None and self._shares_lifted != self.plan_version and np.any(
                problem.wants_power & (caps > 0) & (alloc.current_a == 0)):
            # the live budget leaves out an EVSE the plan charges: its shares counted on it,
            # so the live budget is shared instead, until the next plan (not tick by tick,
            # which would turn the others' limits whenever it fits again)
            self._shares_lifted = self.plan_version
            caps = self._feedback.share_live(problem, caps)
            alloc = share(caps)
        phases = self._switcher.decide(problem, slot, alloc, meter_silent,
                                       self._clock.monotonic())
        if phases is not None:
            alloc = share(None if plan is None else caps_on_phases(plan, slot, caps, phases),
                          phases)
        if plan is not None:
            alloc.reasons[:] = [plan.reasons[e][slot] if r.startswith("plan:") else r
                                for e, r in enumerate(alloc.reasons)]
        # admitted, even where the ramps hold it at 0 A until the others follow their cut
        self._admitted = {uuid for uuid, amps in zip(problem.evse_uuids,
                                                     alloc.current_a.tolist(), strict=True)
                          if amps != 0}
        states = [self._live.states.get(uuid) for uuid in problem.evse_uuids]
        car_stopped = np.array([state in CAR_STOPPED for state in states], dtype=bool)
        charging = np.array([state in CHARGING_OR_UNKNOWN for state in states], dtype=bool)
        self._feedback.granted(problem, slot, alloc, live, self._last_alloc, now_s,
                               self._meter is not None, car_stopped, charging)
        self._switcher.explain_holds(alloc, now, self._clock.monotonic())
        self._last_alloc, self._alloc_problem = alloc, problem
        self._publisher.publish(now, problem.evse_uuids, alloc, self._schedules, slot,
                                id(self._plan))
        return self._publisher.limits


    # ---- internals ----------------------------------------------------------------------

    def _served(self, problem: Problem) -> np.ndarray:
        """Who the last tick admitted (a current, or one the ramps hold back for now)."""
        return np.array([uuid in self._admitted for uuid in problem.evse_uuids], dtype=bool)

    def _car_refused(self, evse: int) -> None:
        """A car paused by itself: it may need more than it was offered."""
        problem = self._alloc_problem
        if problem is None or evse >= problem.evse_count:
            return
        slot = problem.grid.index_at(self._clock.now())
        needs = self._feedback.car_refused(problem, evse, slot)
        if needs is not None:
            log.info("%s: the car paused by itself at a lower current; it is offered at least "
                     "%.1f A for the rest of its session", problem.evse_uuids[evse], needs)

    def _changed(self, replan: bool) -> None:
        if replan:
            self._dirty.set()
        self._wake.set()

    def _evse(self, uuid: str) -> int:
        problem = self._problem or self._build_problem(self._clock.now(), None)
        return problem.tree.evse_index(uuid)

    def _node(self, uuid: str) -> None:
        problem = self._problem or self._build_problem(self._clock.now(), None)
        problem.tree.node(uuid)

    def _rotation(self, now: datetime) -> int:
        return int(now.timestamp() // self.options.rotation_period_s)

    def _request(self, now: datetime, targets: dict[str, OptimizerTarget | None] | None
                 ) -> EnergyFlowRequest:
        """The tree with everything reported live laid over it."""
        live = self._live
        chosen = {**live.targets, **(targets or {})}

        def overlay(node: EnergyFlowRequest) -> EnergyFlowRequest:
            update: dict[str, object] = {}
            if node.children:
                update["children"] = [overlay(c) for c in node.children]
            if node.uuid in live.states:
                update["evse_state"] = live.states[node.uuid]
            if node.uuid in live.measurements:
                update["energy_usage_root"] = live.measurements[node.uuid]
            if node.uuid in chosen:
                update["optimizer_target"] = chosen[node.uuid]
            return node.model_copy(update=update) if update else node

        return overlay(self._tree_source(now))

    def _sources(self, now: datetime) -> list[ExternalSource]:
        return [*self._leases.sources(now), *self._live_sources(now)]

    def _build_problem(self, now: datetime, targets: dict[str, OptimizerTarget | None] | None
                       ) -> Problem:
        return build_problem(self._request(now, targets), now, self.options.plan,
                             external=self._sources(now), prices=self._live.prices)

    def _make_plan(self, problem: Problem, now: datetime
                   ) -> tuple[Plan, list[list[ScheduleResEntry]]]:
        plan = self._planner(problem, rotation=self._rotation(now))
        valid = self.options.tick_s * self.options.valid_ticks
        limits = plan.enforced_limits(now + timedelta(seconds=valid), int(valid), compress=True)
        return plan, [x.schedule for x in limits]

    def _live_key(self, now: datetime, sources: Sequence[ExternalSource] | None = None
                  ) -> tuple:
        """What the plan depends on besides explicit changes: lease expiries, formulas."""
        expired = tuple(sorted(x.name for x in self._leases.leases.values() if x.expired(now)))
        live = tuple(  # values only: live sources restate their limits "from now" each tick
            (s.name, s.node_uuid, tuple(
                (e.limits_to_root.model_dump_json(), e.limits_to_leaves.model_dump_json())
                for e in s.limits.schedule_import))
            for s in (self._sources(now) if sources is None else sources)
            if s.name not in self._leases.leases
        )
        return expired, live

    def _live_caps(self, problem: Problem, now: datetime, sources: Sequence[ExternalSource]
                   ) -> list[LiveCap]:
        """External limits in force now, and what the grid meter leaves, as node caps."""
        budget = self._feedback.meter_budget(problem, now, self._meter, self._clock.monotonic())
        return live_caps(problem, now, sources, self._meter, self.options.safe_current_a,
                         budget)

    async def _tick_loop(self) -> None:
        while True:
            started = time.perf_counter()
            try:
                self.tick()
            except Exception:
                log.exception("tick failed; the EVSEs fall back when their limits expire")
            if self._tick_observer is not None:
                self._tick_observer(time.perf_counter() - started)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.tick_s):
                    await self._wake.wait()

    async def _plan_loop(self) -> None:
        while True:
            await self._dirty.wait()
            await self._quiet()
            try:
                await self.replan()
            except Exception:
                log.exception("re-plan failed; the instant allocator keeps the site safe")
                await asyncio.sleep(self.options.tick_s)
            self._wake.set()

    async def _quiet(self) -> None:
        """Let a burst of changes settle before re-planning (the tick applies each at once).

        Waits until no change came for ``replan_quiet_s``, at most ``replan_max_delay_s``: a
        planner running during a burst would only compete with the ticks for the interpreter.
        """
        quiet, loop = self.options.replan_quiet_s, asyncio.get_running_loop()
        latest = loop.time() + self.options.replan_max_delay_s
        while quiet > 0 and loop.time() < latest:
            self._dirty.clear()
            try:
                async with asyncio.timeout(min(quiet, max(0.0, latest - loop.time()))):
                    await self._dirty.wait()
            except TimeoutError:
                break
        self._dirty.set()

    # ---- persistence --------------------------------------------------------------------

    def _save_state(self) -> None:
        if self._state_path is not None:
            save_state(self._state_path, self._leases, self._live.targets, self._live.prices)

    def _load_state(self) -> None:
        if self._state_path is None:
            return
        loaded = load_state(self._state_path)
        if loaded is not None:
            self._leases, self._live.targets, self._live.prices = loaded
            self._drop_orphan_leases()
            self._drop_orphan_targets()

    def _drop_orphan_targets(self) -> None:
        """A target of an EVSE the site no longer has is not kept for a namesake later."""
        known = {node.uuid for node in Tree.from_request(self._tree_source(self._clock.now()))}
        for uuid in [uuid for uuid in self._live.targets if uuid not in known]:
            log.warning("%s: dropping the target of EVSE %r: the tree has no such EVSE",
                        self._state_path, uuid)
            del self._live.targets[uuid]

    def _drop_orphan_leases(self) -> None:
        """A lease on a node the (changed) site no longer has could only stop every plan."""
        known = {node.uuid for node in Tree.from_request(self._tree_source(self._clock.now()))}
        for lease in list(self._leases.leases.values()):
            if lease.node_uuid not in known:
                log.warning("%s: dropping external limits %r: the tree has no node %r",
                            self._state_path, lease.name, lease.node_uuid)
                self._leases.clear(lease.name)
