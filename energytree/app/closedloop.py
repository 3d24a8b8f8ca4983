"""Closed loop: the real manager against simulated cars, a household and a grid meter.

Time is a ``ManualClock`` moved in physics steps (one second unless the scenario says more), so
a simulated day takes seconds of computing. Each step the cars draw (late by their lag); the
grid meter is read when it is due (unless it dropped out); when a tick is due the EVSEs with a
meter of their own report it, every EVSE reports its state, and the manager ticks. Its limits
reach the cars through ``LimitReceiver`` s, as in ``serve --simulate``. The plan is re-made
before a tick whenever the manager's own plan loop would start one (targets, states, commands,
learned phases, a slot boundary), and finishes at once: accelerated time waits for it.

Every tick is recorded with what flows through each node; ``energytree.app.loopchecks`` reads the
record. Usage::

    loop = ClosedLoop(scenario)
    record = await loop.run()
    assert not overloads(record)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from energytree.app.simulation import Household, SimulatedCar, SimulatedEvse
from energytree.clock import ManualClock
from energytree.leaf import LimitReceiver
from energytree.manager import EnergyManager, ManagerOptions
from energytree.plan import Planner
from energytree.problem import PlanOptions
from energytree.site import EvseConfig, SiteConfig, evse_configs, site_request
from energytree.status import MeterFeed
from energytree.types import (
    EnforcedLimits,
    EvseState,
    ExternalLimits,
    LimitsReq,
    OptimizerTarget,
    ScheduleReqEntry,
)

__all__ = [
    "START",
    "ClosedLoop",
    "Dimming",
    "Dropout",
    "Record",
    "Scenario",
    "Session",
]

START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
OPERATOR = "operator"


@dataclass(frozen=True)
class Session:
    """A car at an EVSE from ``arrive_s`` to ``leave_s`` (seconds after the start)."""

    evse: str
    arrive_s: float
    leave_s: float
    car: SimulatedCar
    goal_soc: float | None = None  # a target: this state of charge by the leave time [%]


@dataclass(frozen=True)
class Dimming:
    """The grid operator limits the EVSEs to ``watts`` from ``at_s`` (None lifts it), on
    ``phases`` phases if given (an OCPP profile's numberPhases)."""

    at_s: float
    watts: float | None
    phases: int | None = None


@dataclass(frozen=True)
class Dropout:
    """The grid meter stops answering at ``at_s`` for ``duration_s``."""

    at_s: float
    duration_s: float


@dataclass
class Scenario:
    site: SiteConfig
    hours: float
    sessions: list[Session] = field(default_factory=list)
    household: Household = field(default_factory=Household)
    dimmings: list[Dimming] = field(default_factory=list)
    dropouts: list[Dropout] = field(default_factory=list)
    tick_s: int = 1  # a multiple of step_s
    step_s: int = 1  # the physics step: cars, household and meter move in these [s]
    meter_period_s: int = 1  # the grid meter answers every … [s]
    evse_meters: frozenset[str] = frozenset()  # EVSEs whose own meter reports to the manager
    safe_current_a: float = 6.0
    margin_a: float = 1.0
    start: datetime = START

    @property
    def max_lag_s(self) -> float:
        return max((s.car.lag_s for s in self.sessions), default=0.0)

    @property
    def grace_s(self) -> float:
        """How long a node may be over its limit after a disturbance: the meter sees it, the
        next tick reacts, the cars follow (one physics step of rounding on top)."""
        return self.meter_period_s + self.tick_s + self.max_lag_s + self.step_s


@dataclass(repr=False)  # thousands of arrays: a repr (e.g. in a task's) would take seconds
class Record:
    """Per tick: time, draw per EVSE and grid phase, household, limits granted, disturbances."""

    scenario: Scenario
    uuids: list[str]
    t_s: list[float] = field(default_factory=list)
    evse_grid_a: list[np.ndarray] = field(default_factory=list)
    household_a: list[tuple[float, float, float]] = field(default_factory=list)
    granted_a: list[np.ndarray] = field(default_factory=list)
    dimming_w: list[float] = field(default_factory=list)
    disturbed_s: list[float] = field(default_factory=list)  # last household step / command
    event_s: list[float] = field(default_factory=list)  # last change of any kind
    verdicts: dict[int, list[tuple[float, float, float]]] = field(default_factory=dict)
    final_soc: dict[int, float] = field(default_factory=dict)  # by index into the sessions

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(times, EVSE draw [tick, evse, phase], household [tick, phase])."""
        n = len(self.uuids)
        draw = np.array(self.evse_grid_a).reshape(len(self.t_s), n, 3)
        return np.array(self.t_s), draw, np.array(self.household_a).reshape(-1, 3)

    def site_power_w(self) -> np.ndarray:
        """The EVSEs' measured power per tick [W]."""
        _t, draw, _h = self.arrays()
        return draw.sum(axis=(1, 2)) * self.scenario.site.nominal_voltage_V


class ClosedLoop:
    """The manager, simulated EVSEs and a simulated grid meter on one manual clock."""

    def __init__(self, scenario: Scenario, planner: Planner | None = None) -> None:
        self.scenario = scenario
        site = scenario.site
        self.clock = ManualClock(scenario.start)
        options = ManagerOptions(
            tick_s=scenario.tick_s,
            plan=PlanOptions(site.slot_minutes * 60, site.horizon_hours * 3600,
                             site.nominal_voltage_V),
            safe_current_a=scenario.safe_current_a, meter_margin_a=scenario.margin_a)
        kwargs = {} if planner is None else {"planner": planner}
        self.manager = EnergyManager(lambda now: site_request(site, now), clock=self.clock,
                                     options=options, has_meter=True, **kwargs)
        self.configs = evse_configs(site)
        self.evses = [self._evse(cfg) for cfg in self.configs]
        self.manager.add_listener(self._deliver)
        self.record = Record(scenario, [c.evse for c in self.configs])
        self._t = 0
        self._planned = False
        self.replans = 0
        self._states: dict[str, EvseState] = {}
        self._dimming_w = np.inf
        self._disturbed_s = self._event_s = -np.inf
        self._sessions: dict[str, int] = {}  # EVSE → index of the session plugged in

    def _evse(self, cfg: EvseConfig) -> SimulatedEvse:
        receiver = LimitReceiver(cfg.evse, clock=self.clock)
        return SimulatedEvse(cfg.evse, receiver, self.scenario.site.nominal_voltage_V,
                             evse_phases=cfg.phases, phase_rotation=cfg.phase_rotation,
                             can_switch_phases=cfg.phase_switching)

    def _deliver(self, limits: list[EnforcedLimits]) -> None:
        by_uuid = {sim.uuid: sim for sim in self.evses}
        for item in limits:
            sim = by_uuid.get(item.uuid)
            if sim is not None:
                sim.receiver.apply(item)

    async def run(self) -> Record:
        """Simulate the scenario's hours; returns the record of every tick."""
        scenario, step = self.scenario, self.scenario.step_s
        end = int(scenario.hours * 3600)
        silent = self._dropout_seconds()
        await self._tick()
        while self._t < end:
            self._apply_events(self._t, self._t + step)
            for sim in self.evses:
                sim.step(step)
            self._t += step
            self.clock.advance(step)
            period = scenario.meter_period_s
            if self._t not in silent:
                if self._t // period != (self._t - step) // period:  # a reading fell due
                    self._read_meter()
            elif self._t - step not in silent:
                self.manager.report_grid_meter(MeterFeed(None, None, "TIMEOUT"))
            if self._t % scenario.tick_s == 0:
                await self._tick()
        for index in list(self._sessions.values()):
            self._leave(index, departed=False)
        return self.record

    # ---- what happens ----------------------------------------------------------------

    def _apply_events(self, start: int, end: int) -> None:
        """Whatever the scenario has happen in [start, end), at ``start``."""
        scenario = self.scenario
        for index, session in enumerate(scenario.sessions):
            if start <= session.leave_s < end and self._sessions.get(session.evse) == index:
                self._leave(index)
        for index, session in enumerate(scenario.sessions):
            if start <= session.arrive_s < end:
                self._arrive(index)
        for dimming in scenario.dimmings:
            if start <= dimming.at_s < end:
                self._dim(dimming)
        t0 = scenario.start + timedelta(seconds=start)
        if scenario.household.steps_between(t0, t0 + timedelta(seconds=end - start)):
            self._disturbed_s = self._event_s = start
        for dropout in scenario.dropouts:  # the meter falls silent (or answers again) from
            # the reading at ``end`` on, before the tick at ``end``: that is when it happens
            if any(start < edge <= end for edge in (dropout.at_s,
                                                    dropout.at_s + dropout.duration_s)):
                self._disturbed_s = self._event_s = end

    def _arrive(self, index: int) -> None:
        session = self.scenario.sessions[index]
        sim = self.evses[self.record.uuids.index(session.evse)]
        if session.evse in self._sessions:
            return  # the EVSE is taken: this car drives on
        sim.plug(replace(session.car))
        self._sessions[session.evse] = index
        self._update_target(index)
        self._event_s = self._t

    def _leave(self, index: int, departed: bool = True) -> None:
        """The car drives off (or the run ends, which judges no target)."""
        session = self.scenario.sessions[index]
        sim = self.evses[self.record.uuids.index(session.evse)]
        assert sim.car is not None
        if departed:
            self.record.final_soc[index] = sim.car.soc_percent
        sim.plug(None)
        del self._sessions[session.evse]
        if session.goal_soc is not None:
            self.manager.set_target(session.evse, None)
        self._event_s = self._t

    def _dim(self, dimming: Dimming) -> None:
        watts = dimming.watts
        if watts is None:
            self.manager.clear_external_limits(OPERATOR)
            self._dimming_w = np.inf
        else:
            limits = LimitsReq(total_power_W=watts, ac_max_phase_count=dimming.phases)
            entry = ScheduleReqEntry(timestamp=self.clock.now(), limits_to_root=limits,
                                     limits_to_leaves=LimitsReq())
            self.manager.set_external_limits(OPERATOR, self.scenario.site.grid.uuid,
                                             ExternalLimits(schedule_import=[entry]))
            self._dimming_w = watts
        self._disturbed_s = self._event_s = self._t

    def _update_target(self, index: int) -> None:
        """The EVSE tells the manager the car's goal and state of charge (as EVerest does)."""
        session = self.scenario.sessions[index]
        sim = self.evses[self.record.uuids.index(session.evse)]
        if session.goal_soc is None or sim.car is None:
            return
        leave = self.scenario.start + timedelta(seconds=session.leave_s)
        self.manager.set_target(session.evse, OptimizerTarget(
            car_battery_soc=sim.car.soc_percent, charge_to_max_percent=session.goal_soc,
            car_battery_capacity_kWh=sim.car.battery_kwh, leave_time=leave))

    def _read_meter(self) -> None:
        household = self.scenario.household.current_a(self.clock.now())
        amps = np.add(household, sum((np.array(s.grid_currents_a()) for s in self.evses),
                                     np.zeros(3)))
        volts = self.scenario.site.nominal_voltage_V
        current = (float(amps[0]), float(amps[1]), float(amps[2]))
        self.manager.report_grid_meter(MeterFeed(current, float(amps.sum()) * volts, "NORMAL"))

    def _dropout_seconds(self) -> set[int]:
        seconds: set[int] = set()
        for dropout in self.scenario.dropouts:
            seconds.update(range(int(dropout.at_s), int(dropout.at_s + dropout.duration_s)))
        return seconds

    async def _tick(self) -> None:
        """EVSE reports, a re-plan where the plan loop would make one, the tick, the record."""
        manager = self.manager
        slot_s = int(self.scenario.site.slot_minutes * 60)
        boundary = self._t % slot_s == 0
        if boundary:
            for index in self._sessions.values():
                self._update_target(index)
        for sim in self.evses:
            if sim.uuid in self.scenario.evse_meters:
                manager.report_measurement(sim.uuid, sim.measurement())
            if self._states.get(sim.uuid) != sim.state:
                self._states[sim.uuid] = sim.state
                manager.set_evse_state(sim.uuid, sim.state)
        if not self._planned or boundary or self._plan_wanted():
            self._planned = True
            self.replans += 1
            await manager.replan()
            self._judge_targets()
        if boundary:  # a new slot may bring a new plan: an event (the cars' own changes are not)
            self._event_s = self._t
        manager.tick()
        self._remember()

    def _plan_wanted(self) -> bool:
        """Whether the manager's own plan loop would re-plan now (it waits on this event:
        targets, states, commands, learned phases, slot boundaries all set it)."""
        return self.manager._dirty.is_set()  # the event the manager's plan loop waits on

    def _judge_targets(self) -> None:
        """After a plan: does it call each car's target reachable? (shortfall, energy needed)"""
        status = {e.uuid: e for e in self.manager.status().evses}
        for uuid, index in self._sessions.items():
            session = self.scenario.sessions[index]
            evse = status.get(uuid)
            if session.goal_soc is None or evse is None or evse.target is None:
                continue
            sim = self.evses[self.record.uuids.index(uuid)]
            assert sim.car is not None
            self.record.verdicts.setdefault(index, []).append(
                (float(self._t), evse.shortfall_kwh, sim.car.soc_percent))

    def _remember(self) -> None:
        record = self.record
        record.t_s.append(float(self._t))
        record.evse_grid_a.append(np.array([s.grid_currents_a() for s in self.evses]))
        record.household_a.append(self.scenario.household.current_a(self.clock.now()))
        granted = {x.uuid: x.limits_root_side for x in self.manager.enforced_limits}
        record.granted_a.append(np.array([
            (granted[u].ac_max_current_A or 0.0) if granted.get(u) else 0.0
            for u in record.uuids]))
        record.dimming_w.append(float(self._dimming_w))
        record.disturbed_s.append(float(self._disturbed_s))
        record.event_s.append(float(self._event_s))
