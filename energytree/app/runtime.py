"""The running site: one ``EnergyManager`` and one plug per section of the site file.

What every plug may use lives here: the manager, the audit and session logs, the variables
and formulas, the grid meter's last reading, and the §14a rules. Grid-operator channels
(site formulas such as ``55000 * CM.AVAIL / 100``, the SunSpec percentage, ripple-control
levels, OCPP composite schedules) each become a named external limit on the root through
``operator_limit``, never below the §14a minimum, and each command lands in the audit log.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from adapters.meter.client import MeterState
from adapters.meter.registermap import MeterReading
from adapters.ocpp.evseport import EventSink, EvseEvent
from adapters.web import CarFacts, Dashboard, SiteMetrics
from energytree.app.plugs.base import Plug
from energytree.app.plugs.registry import PLUGS
from energytree.app.service import ServiceConfig
from energytree.app.simservice import SiteSimulation
from energytree.app.simulation import SimulatedEvse
from energytree.app.statusview import render_status
from energytree.audit import AuditLog
from energytree.batchwrite import BatchWriter
from energytree.errors import ConfigError, EnergyTreeError
from energytree.formula import Formula
from energytree.formulaenv import EvseFacts, LiveFacts, SiteEnvironment, facts_to_names
from energytree.gridops import FourteenA, percent_base_w, pmin_14a_w, power_limit
from energytree.inputs import load_prices
from energytree.manager import EnergyManager, ManagerOptions, MeterFeed
from energytree.plan import Plan
from energytree.problem import ExternalSource, PlanOptions, Problem
from energytree.sessions import Database, SessionLog, SessionTracker, StateChanged
from energytree.sessions import MeterReading as SessionReading
from energytree.site import evse_configs, site_request
from energytree.siteformulas import SiteFormulas
from energytree.tasks import cancel_and_wait
from energytree.variables import Origin, VariableStore
from optimizer import optimise

__all__ = ["Service"]

SectionT = TypeVar("SectionT", bound=BaseModel)

log = logging.getLogger(__name__)
PERCENT_VARIABLE = "_max_total_current_prc"  # cFos's writable percentage of the connection


class Service:
    """Build with a config; ``start``/``stop`` run the manager and one plug per section."""

    def __init__(self, config: ServiceConfig, state_dir: Path, simulate: bool = False) -> None:
        self.config = config
        self.simulate = simulate
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{state_dir}: cannot use as the state directory: "
                              f"{exc.strerror} (check --state-dir)") from exc
        self.state_dir = state_dir
        self.zone = ZoneInfo(config.timezone)
        self.variables = VariableStore(state_dir / "variables.json")
        self.variables.load()
        self.formulas = SiteFormulas(config.grid, config.nominal_voltage_V)
        section = config.fourteen_a
        self.fourteen_a = FourteenA(
            pmin_14a_w(section.controllable_devices or len(evse_configs(config)), section.gzf),
            section.add_pv_surplus)
        self._percent_formula = Formula.parse(
            f"{self.percent_base_w()!r} * CM.{PERCENT_VARIABLE} / 100")
        self.meter_reading: MeterReading | None = None  # the grid meter's last good reading
        self.meter_lost = False
        self.inputs: tuple[float | None, float | None] = (None, None)  # ripple contacts
        self.metrics = SiteMetrics()
        self.manager = self._manager(state_dir / "manager.json")
        self.audit = AuditLog(state_dir / "audit.sqlite")
        try:
            if config.prices:
                self.manager.set_prices(load_prices(config.prices))
            self._forget_unconfigured(state_dir / "manager.json")
        except BaseException:
            self.audit.close()  # its writer thread and file
            raise
        self.variables.subscribe(self._on_variables)
        self.plugs: dict[str, Plug[BaseModel]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._close_session_log: Callable[[], Awaitable[None]] | None = None
        self.simulation: SiteSimulation | None = None  # with --simulate, its plug sets these
        self.simulated: dict[str, SimulatedEvse] = {}
        self.sessions: SessionTracker | EventSink | None = None
        self.dashboard: Dashboard | None = None

    def _manager(self, state_path: Path) -> EnergyManager:
        config, meter = self.config, self.config.meter
        options = ManagerOptions(
            tick_s=config.tick_s,
            plan=PlanOptions(config.slot_minutes * 60, config.horizon_hours * 3600,
                             config.nominal_voltage_V),
            plan_budget_s=config.plan_budget_s,
            safe_current_a=meter.safe_current_A if meter else 6.0,
            installation_max_a=meter.installation_max_current_A if meter else None,
            meter_margin_a=meter.margin_A if meter else 1.0,
            **({"response_s": meter.car_response_s,
                "meter_period_s": meter.poll_interval_s} if meter else {}),
        )
        budget = config.plan_budget_s
        return EnergyManager(
            lambda now: site_request(config, now, resolve=lambda _text: None),
            planner=self.metrics.timed_plan(
                lambda problem, rotation=0: _plan(problem, budget, rotation)),
            options=options,
            state_path=state_path,
            live_sources=self.formula_sources,
            has_meter=meter is not None,
            tick_observer=self.metrics.observe_tick,
        )

    def _forget_unconfigured(self, state_file: Path) -> None:
        """What the site file no longer configures is not used from old state (and is said)."""
        if not self.config.prices and self.manager.prices:
            log.warning("%s: dropping %d saved prices: the site file has no prices line",
                        state_file, len(self.manager.prices))
            self.manager.set_prices([])
        for plug in PLUGS:
            source = plug.limit_source
            if (source is not None and getattr(self.config, plug.section) is None
                    and self.manager.clear_external_limits(source)):
                log.warning("%s: dropping the saved %s limit: the site file has no %s section",
                            state_file, source, plug.section)
                self.audit.end(source, self.manager_now())

    # ---- §14a and the operator channels ------------------------------------------------

    @property
    def root(self) -> str:
        return self.config.grid.uuid

    def percent_base_w(self) -> float:
        """What 100 % means in every operator percentage (40968, ``_max_total_current_prc``,
        ripple levels) [W]."""
        grid = self.config.grid
        return percent_base_w(
            self.config.fourteen_a.percent_base_W,
            float(grid.max_power_W) if isinstance(grid.max_power_W, float | int) else None,
            float(grid.max_current_A) if isinstance(grid.max_current_A, float | int) else None,
            grid.phases, self.config.nominal_voltage_V)

    def floor_w(self) -> float:
        """§14a: dimming leaves at least Pmin (plus local surplus, if allowed) [W]."""
        return self.fourteen_a.floor_w(self._grid_power_w())

    def _grid_power_w(self) -> float | None:
        return self.meter_reading.power_w if self.meter_reading else None

    def operator_limit(self, origin: Origin, watts: float, detail: str) -> None:
        now = self.manager_now()
        grid_w = self._grid_power_w()
        limited = self.fourteen_a.dimmed_w(watts, grid_w)
        source = origin.channel
        self.manager.set_external_limits(source, self.root, power_limit(now, limited))
        self.audit.record(source, now, limited, "W", grid_w, detail, channel=origin.channel,
                          identity=origin.identity)
        log.info("grid operator via %s: %.0f W (asked %.0f W; §14a floor %.0f W)",
                 source, limited, watts, self.floor_w())

    def _on_variables(self, names: frozenset[str], origin: Origin) -> None:
        """Variables changed (``set_cm_vars``): formulas apply them at once; the audit logs them."""
        self.formulas.variables_changed()
        self.manager.notify()
        now = self.manager_now()
        views = {view.name.casefold(): view for view in self.variables.get_all(self.environment())}
        grid_w = self._grid_power_w()
        for name in sorted(names):
            view = views.get(name.casefold())
            source = f"CM.{name.upper()}"  # one audit source per variable, however spelled
            if view is None:
                self.audit.end(source, now)
            else:
                self.audit.record(source, now, view.value, "", grid_w, f"{name} = {view.expr}",
                                  channel=origin.channel, identity=origin.identity)

    def manager_now(self) -> datetime:
        return self.manager.clock.now()

    def formula_sources(self, now: datetime) -> list[ExternalSource]:
        """Site limits written as formulas, evaluated now (a failing one allows nothing)."""
        env = self.variables.environment(self.environment())
        percent = PERCENT_VARIABLE in {n.casefold() for n in self.variables.names()}
        extra = [(self.root, "max_power_W", self._percent_formula)] if percent else []
        return self.formulas.sources(now, env, self.floor_w(), extra)

    def environment(self) -> SiteEnvironment:
        return SiteEnvironment(
            facts=lambda: facts_to_names(self.facts()),
            clock_now=self.manager_now,
            zone=self.zone,
            prices=lambda: [(p.timestamp, p.value) for p in self.manager.prices],
        )

    def facts(self) -> LiveFacts:
        status_evses = {e.uuid: e for e in self.manager.status().evses}
        evses = []
        for evse in evse_configs(self.config):
            s = status_evses.get(evse.evse)
            sim = self.simulated.get(evse.evse)
            current = _evse_phase_currents(sim) if sim else (0.0, 0.0, 0.0)
            evses.append(EvseFacts(
                state=s.state if s else None, current_a=current,
                power_w=s.power_w if s else 0.0, offered_a=s.current_a if s else 0.0,
                min_current_a=evse.min_current_A,
                max_current_a=evse.max_current_A if isinstance(evse.max_current_A, float) else 0.0,
                import_wh=sim.import_wh if sim else None,
                soc=sim.car.soc_percent if sim and sim.car else None))
        reading = self.meter_reading
        price = None
        now = self.manager_now()
        for p in self.manager.prices:
            if p.timestamp <= now:
                price = p.value
        return LiveFacts(
            meter_current_a=reading.current_a if reading else None,
            meter_power_w=reading.power_w if reading else None,
            meter_import_wh=reading.energy_import_wh if reading else None,
            evses=evses, inputs=self.inputs, price=price,
            max_total_current_a=(float(self.config.grid.max_current_A)
                                 if isinstance(self.config.grid.max_current_A, float) else None),
        )

    def grid_meter_reading(self) -> MeterReading | None:
        """The grid meter's reading while it is NORMAL; None while it is lost."""
        return None if self.meter_lost else self.meter_reading

    def on_meter_reading(self, reading: MeterReading) -> None:
        self.meter_reading = reading
        self.meter_lost = False
        self.manager.report_grid_meter(MeterFeed(reading.current_a, reading.power_w, "NORMAL"))

    def on_meter_state(self, state: MeterState) -> None:
        if state is not MeterState.NORMAL:
            self.meter_lost = True  # SunSpec serves "not available" until a good reading
            self.manager.report_grid_meter(MeterFeed(None, None, str(state)))

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """The manager, then each plug the site file has (a failure leaves ``stop`` to
        stop what already runs), then the session log unless a plug provides one."""
        await self.manager.start()
        for plug_type in PLUGS:
            section = getattr(self.config, plug_type.section)
            if section is None or not plug_type.wanted(self):
                continue
            plug = self.plugs[plug_type.section] = plug_type(self, section)
            await plug.start()
        if self.sessions is None:
            self.sessions = self._session_log()
        if not self.simulate:
            self._tasks.append(asyncio.create_task(self._session_loop(), name="et-sessions"))
        self._tasks.append(asyncio.create_task(self._status_loop(), name="energytree-status"))

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        stoppers = [plug.stop for plug in reversed(self.plugs.values())]
        if self._close_session_log is not None:
            stoppers.insert(0, self._close_session_log)
        for stopper in stoppers:
            try:
                await stopper()
            except Exception:  # one part failing to stop must not keep the others running
                log.exception("stopping %s failed", getattr(stopper, "__self__", stopper))
        await self.manager.stop()
        self.audit.close()

    def feed(self, event: EvseEvent) -> None:
        """A session event from a plug (simulation, CSMS) reaches the session log."""
        if self.sessions is not None:
            self.sessions.feed(event)

    def under_state_dir(self, section: SectionT, field: str, name: str) -> SectionT:
        """``section`` with ``field`` set to a file under ``--state-dir`` unless the site
        file names one: state survives a restart without any setting."""
        if getattr(section, field) is not None:
            return section
        return section.model_copy(update={field: self.state_dir / name})

    def connections(self) -> dict[str, bool]:
        """Protocol links and whether each is up now (for the page and ``/metrics``)."""
        up: dict[str, bool] = {}
        if self.config.meter is not None:
            feed = self.manager.status().meter
            up["grid_meter"] = feed is not None and feed.state == "NORMAL"
        for plug in self.plugs.values():
            up.update(plug.links())
        return up

    def car_facts(self, uuid: str) -> CarFacts:
        """The car's state of charge and battery, as far as the site knows them."""
        sim = self.simulated.get(uuid)
        if sim is not None and sim.car is not None:
            return CarFacts(sim.car.soc_percent, sim.car.battery_kwh)
        battery = next((e.battery_kWh for e in evse_configs(self.config) if e.evse == uuid), None)
        return CarFacts(None, battery)

    def tariff(self) -> float | None:
        """The variable TARIF (0 normal, 1 reduced) for the session log, if set."""
        try:
            return self.variables.value("TARIF", self.environment())
        except EnergyTreeError:
            return None

    def _session_log(self) -> SessionTracker:
        db = Database(self.state_dir / "sessions.sqlite")
        writer = BatchWriter(db.path, "session log", self.config.session_log_interval_s)

        async def close() -> None:
            await asyncio.to_thread(writer.close)  # the last batch and a checkpoint
            db.close()

        self._close_session_log = close
        return SessionTracker(SessionLog(db, writer), self.tariff)

    async def _session_loop(self) -> None:
        """Sessions of EVSEs no plug reports itself, from what the manager was told."""
        states: dict[str, object] = {}
        while True:
            now = self.manager_now()
            for evse in evse_configs(self.config):
                if any(plug.serves(evse.evse) for plug in self.plugs.values()):
                    continue  # its plug tells the sessions each event as it comes
                meter = self.manager.measurement(evse.evse)
                if meter is not None and meter.energy_Wh_import is not None:
                    power = meter.power_W.total if meter.power_W else None
                    self.feed(SessionReading(evse.evse, meter.energy_Wh_import.total or 0.0,
                                             power or 0.0, now))
                state = self.manager.evse_state(evse.evse)
                if state is not None and states.get(evse.evse) != state:
                    states[evse.evse] = state
                    self.feed(StateChanged(evse.evse, state, now))
            await asyncio.sleep(self.config.tick_s)

    async def _status_loop(self) -> None:
        """A status block at once (a short run shows one too), then every interval."""
        while True:
            text = render_status(self.manager.status(), self.zone, self.simulated)
            for plug in self.plugs.values():
                if note := plug.note():
                    text += f"\n{note}"
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            await asyncio.sleep(self.config.status_interval_s)


def _evse_phase_currents(sim: SimulatedEvse) -> tuple[float, float, float]:
    """A simulated EVSE's current on each of its own phases [A] (0 where it draws nothing)."""
    amps = sim.measurement().current_A
    assert amps is not None
    return amps.L1 or 0.0, amps.L2 or 0.0, amps.L3 or 0.0


def _plan(problem: Problem, budget: float, rotation: int) -> Plan:
    return optimise(problem, time_budget_s=budget, rotation=rotation)
