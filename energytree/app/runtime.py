"""The running service: one ``EnergyManager`` wired to the adapters a site file enables.

Grid-operator channels (site formulas such as ``55000 * CM.AVAIL / 100``, the SunSpec
percentage, ripple-control levels, OCPP composite schedules) each become a named external
limit on the root, never below the §14a minimum, and each command lands in the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from adapters.grpc import GrpcServer
from adapters.http import HttpApi
from adapters.meter.client import GridMeterClient, MeterState
from adapters.meter.registermap import MeterReading
from adapters.ocpp.csms import CsmsServer
from adapters.ocpp.evseport import SimulatedFeed
from adapters.ocpp.forward import ChargerCommands
from adapters.ocpp.gateway import Gateway
from adapters.ocpp.upstream import GridReading, UpstreamClient
from adapters.ripple import RippleLevel, RippleReceiver
from adapters.sunspec import MeterValues, Parameters, SetPercent, SunSpecServer, SunSpecValues
from adapters.web import CarFacts, Dashboard, DashboardSite, SiteFeed, SiteMetrics
from energytree.app.service import ServiceConfig
from energytree.app.simservice import SiteSimulation
from energytree.app.simulation import SimulatedEvse
from energytree.app.startup import listening
from energytree.app.statusview import render_status
from energytree.audit import AuditLog
from energytree.batchwrite import BatchWriter
from energytree.errors import ConfigError, EnergyTreeError, RequestError
from energytree.formula import Formula
from energytree.formulaenv import EvseFacts, LiveFacts, SiteEnvironment, facts_to_names
from energytree.gridops import (
    FourteenA,
    external_from_periods,
    percent_base_w,
    pmin_14a_w,
    power_limit,
)
from energytree.inputs import load_prices
from energytree.manager import EnergyManager, ManagerOptions, MeterFeed
from energytree.persist import read_json, write_json_atomic
from energytree.plan import Plan
from energytree.problem import ExternalSource, PlanOptions, Problem
from energytree.sessions import (
    Database,
    SessionLog,
    SessionTracker,
    StateChanged,
)
from energytree.sessions import (
    MeterReading as SessionReading,
)
from energytree.site import evse_configs, site_request
from energytree.siteformulas import SiteFormulas
from energytree.tasks import cancel_and_wait
from energytree.variables import Origin, VariableStore
from optimizer import optimise

__all__ = ["Service"]

SectionT = TypeVar("SectionT", bound=BaseModel)

log = logging.getLogger(__name__)
PLAUSIBLE_FACTOR, PLAUSIBLE_MIN_A, PLAUSIBLE_UNKNOWN_A = 3.0, 100.0, 1000.0
SUNSPEC_FILE = "sunspec.json"  # the percentage last written to 40968
PERCENT_VARIABLE = "_max_total_current_prc"  # cFos's writable percentage of the connection
FEED_SLICE = 30  # simulated EVSEs whose readings reach the session log in one loop turn
RIPPLE = Origin("ripple", "contacts")
SUNSPEC = Origin("sunspec", "Modbus master")  # Modbus TCP carries no identity
_SECTION_NAMES = {"sunspec": "sunspec", "ripple": "ripple", "ocpp": "ocpp_upstream"}


class Service:
    """Build with a config; ``start``/``stop`` run every enabled part."""

    def __init__(self, config: ServiceConfig, state_dir: Path, simulate: bool = False) -> None:
        self.config = config
        self.simulate = simulate
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{state_dir}: cannot use as the state directory: "
                              f"{exc.strerror} (check --state-dir)") from exc
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
        self._meter_reading: MeterReading | None = None
        self._inputs: tuple[float | None, float | None] = (None, None)
        self._percent: float | None = None
        self._meter_lost = False
        options = ManagerOptions(
            tick_s=config.tick_s,
            plan=PlanOptions(config.slot_minutes * 60, config.horizon_hours * 3600,
                             config.nominal_voltage_V),
            plan_budget_s=config.plan_budget_s,
            safe_current_a=config.meter.safe_current_A if config.meter else 6.0,
            installation_max_a=(config.meter.installation_max_current_A if config.meter else None),
            meter_margin_a=config.meter.margin_A if config.meter else 1.0,
            **({"response_s": config.meter.car_response_s,
                "meter_period_s": config.meter.poll_interval_s} if config.meter else {}),
        )
        budget = config.plan_budget_s
        self.metrics = SiteMetrics()
        self.manager = EnergyManager(
            lambda now: site_request(config, now, resolve=lambda _text: None),
            planner=self.metrics.timed_plan(
                lambda problem, rotation=0: _plan(problem, budget, rotation)),
            options=options,
            state_path=state_dir / "manager.json",
            live_sources=self._formula_sources,
            has_meter=config.meter is not None,
            tick_observer=self.metrics.observe_tick,
        )
        self.audit = AuditLog(state_dir / "audit.sqlite")
        try:
            if config.prices:
                self.manager.set_prices(load_prices(config.prices))
            self._forget_unconfigured(state_dir / "manager.json")
        except BaseException:
            self.audit.close()  # its writer thread and file
            raise
        self.variables.subscribe(self._on_variables)
        self._parts: list[tuple[str, Awaitable[None] | None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stoppers: list = []
        self.simulated: dict[str, SimulatedEvse] = {}
        self._simulation: SiteSimulation | None = None
        self._state_dir = state_dir
        self.sessions: SessionTracker | Gateway | None = None
        self._csms: CsmsServer | None = None
        self._upstream: UpstreamClient | None = None
        self.dashboard: Dashboard | None = None

    def _forget_unconfigured(self, state_file: Path) -> None:
        """What the site file no longer configures is not used from old state (and is said)."""
        if not self.config.prices and self.manager.prices:
            log.warning("%s: dropping %d saved prices: the site file has no prices line",
                        state_file, len(self.manager.prices))
            self.manager.set_prices([])
        sections = {"sunspec": self.config.sunspec, "ripple": self.config.ripple,
                    "ocpp": self.config.ocpp_upstream}
        for source, section in sections.items():
            if section is None and self.manager.clear_external_limits(source):
                log.warning("%s: dropping the saved %s limit: the site file has no %s section",
                            state_file, source, _SECTION_NAMES[source])
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
        return self._meter_reading.power_w if self._meter_reading else None

    def _operator_limit(self, origin: Origin, watts: float, detail: str) -> None:
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

    def _formula_sources(self, now: datetime) -> list[ExternalSource]:
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
        reading = self._meter_reading
        price = None
        now = self.manager_now()
        for p in self.manager.prices:
            if p.timestamp <= now:
                price = p.value
        return LiveFacts(
            meter_current_a=reading.current_a if reading else None,
            meter_power_w=reading.power_w if reading else None,
            meter_import_wh=reading.energy_import_wh if reading else None,
            evses=evses, inputs=self._inputs, price=price,
            max_total_current_a=(float(self.config.grid.max_current_A)
                                 if isinstance(self.config.grid.max_current_A, float) else None),
        )

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.manager.start()
        if self.simulate:
            await self._start_simulation()
        elif self.config.meter:
            await self._start_meter(self.config.meter.host, self.config.meter.port)
        if http := self.config.http_api:
            api = HttpApi(http, self.variables, self.environment)
            self._stoppers.append(api.stop)
            with listening("http_api", http.host, http.port):
                port = await api.start()
            log.info("HTTP variables API on %s:%d", http.host, port)
        if self.config.dashboard:
            await self._start_dashboard()
        if self.config.grpc:
            server = GrpcServer(self.config.grpc, self.manager, self.variables,
                                self.environment, self.audit)
            self._stoppers.append(server.stop)
            with listening("grpc", self.config.grpc.host, self.config.grpc.port):
                port = await server.start()
            log.info("gRPC API on %s:%d", self.config.grpc.host, port)
        if self.config.sunspec:
            await self._start_sunspec()
        if self.config.ripple:
            receiver = RippleReceiver(self.config.ripple, on_change=self._on_ripple)
            await receiver.start()
            self._stoppers.append(receiver.stop)
        if self.config.ocpp_upstream:
            self._start_upstream()
        if self.config.csms:
            csms = self._csms = CsmsServer(_under(self.config.csms, "state_path",
                                                  self._state_dir / "csms.json"),
                                           self.manager, clock=self.manager.clock)
            self._stoppers.append(csms.stop)
            with listening("csms", self.config.csms.host, self.config.csms.port):
                await csms.start()
            log.info("OCPP CSMS for chargers on %s:%d", self.config.csms.host, csms.port)
        await self._start_sessions()
        if not self.simulate:
            self._tasks.append(asyncio.create_task(self._session_loop(), name="et-sessions"))
        self._tasks.append(asyncio.create_task(self._status_loop(), name="energytree-status"))

    async def stop(self) -> None:
        if self._upstream is not None:
            self._upstream.stopping = True  # no reconnect while its task is being cancelled
        await cancel_and_wait(self._tasks)
        for stopper in reversed(self._stoppers):
            with contextlib.suppress(Exception):
                await stopper()
        await self.manager.stop()
        self.audit.close()

    async def _start_dashboard(self) -> None:
        """The web page and ``/metrics``; the variables API's credentials are the operator's."""
        config = self.config.dashboard
        assert config is not None
        api = self.config.http_api
        feed = SiteFeed(self.config.name, self.zone, self.manager,
                        lambda: self.variables.get_all(self.environment()), self._connections,
                        self._formula_sources)
        operator = None if api is None else (api.username, api.password.get_secret_value())
        site = DashboardSite(feed, self.metrics, self.variables, self.audit,
                             lambda: getattr(self.sessions, "log", None), self._car_facts,
                             operator)
        dashboard = self.dashboard = Dashboard(config, site)
        port = await dashboard.start()
        self.metrics.watch(dashboard.snapshot)
        scheme = "https" if config.tls_cert else "http"
        sys.stdout.write(f"dashboard: {scheme}://{config.host}:{port}/  (metrics: /metrics)\n")
        sys.stdout.flush()
        self._stoppers.append(dashboard.stop)

    def _connections(self) -> dict[str, bool]:
        """Protocol links and whether each is up now (for the page and ``/metrics``)."""
        up: dict[str, bool] = {}
        if self.config.meter is not None:
            feed = self.manager.status().meter
            up["grid_meter"] = feed is not None and feed.state == "NORMAL"
        if self._upstream is not None:
            up["ocpp_upstream"] = self._upstream.connected.is_set()
        if self._csms is not None:
            for charger in self._csms.chargers:
                up[f"ocpp_charger/{charger}"] = charger in self._csms.sessions
        if isinstance(self.sessions, Gateway):
            for uuid, link in self.sessions.links.items():
                up[f"ocpp_gateway/{uuid}"] = link.connected.is_set()
        return up

    def _car_facts(self, uuid: str) -> CarFacts:
        """The car's state of charge and battery, as far as the site knows them."""
        sim = self.simulated.get(uuid)
        if sim is not None and sim.car is not None:
            return CarFacts(sim.car.soc_percent, sim.car.battery_kwh)
        battery = next((e.battery_kWh for e in evse_configs(self.config) if e.evse == uuid), None)
        return CarFacts(None, battery)

    async def _start_sessions(self) -> None:
        """The session log always; the supplier gateway mirrors it upstream when configured."""
        if self.config.ocpp_gateway:
            gateway = Gateway(self.config.ocpp_gateway, self.manager,
                              [e.evse for e in evse_configs(self.config)], tariff=self._tariff)
            if self._csms is not None:  # supplier commands reach the OCPP chargers
                gateway.commands = ChargerCommands(self._csms, gateway.commands)
            await gateway.start()
            self._stoppers.append(gateway.stop)
            self.sessions = gateway
        else:
            db = Database(self._state_dir / "sessions.sqlite")
            writer = BatchWriter(db.path, "session log", self.config.session_log_interval_s)
            self._stoppers.append(_closer(db, writer))
            self.sessions = SessionTracker(SessionLog(db, writer), self._tariff)
        self._feed = SimulatedFeed(self.sessions)
        if self._csms is not None:  # id tags of OCPP chargers' sessions
            self._csms.event_sink = self.sessions

    async def _session_loop(self) -> None:
        """Sessions of EVSEs energytree does not simulate, from what the manager was told."""
        sink = self.sessions
        assert sink is not None
        states: dict[str, object] = {}
        while True:
            now = self.manager_now()
            for evse in evse_configs(self.config):
                if self._csms is not None and self._csms.serves(evse.evse):
                    continue  # its CSMS tells the sessions each event as it comes
                meter = self.manager.measurement(evse.evse)
                if meter is not None and meter.energy_Wh_import is not None:
                    power = meter.power_W.total if meter.power_W else None
                    sink.feed(SessionReading(evse.evse, meter.energy_Wh_import.total or 0.0,
                                             power or 0.0, now))
                state = self.manager.evse_state(evse.evse)
                if state is not None and states.get(evse.evse) != state:
                    states[evse.evse] = state
                    sink.feed(StateChanged(evse.evse, state, now))
            await asyncio.sleep(self.config.tick_s)

    def _tariff(self) -> float | None:
        """The variable TARIF (0 normal, 1 reduced) for the session log, if set."""
        try:
            return self.variables.value("TARIF", self.environment())
        except EnergyTreeError:
            return None

    async def _start_meter(self, host: str, port: int | None) -> None:
        assert self.config.meter is not None
        update: dict[str, object] = {"host": host, "port": port}
        if "max_plausible_current_a" not in self.config.meter.model_fields_set:
            update["max_plausible_current_a"] = plausible_current_a(self.config)
        config = self.config.meter.model_copy(update=update)
        client = GridMeterClient(config, on_reading=self._on_meter_reading,
                                 on_state=self._on_meter_state)
        await client.start()
        self._meter = client
        self._stoppers.append(client.stop)

    def _on_meter_reading(self, reading: MeterReading) -> None:
        self._meter_reading = reading
        self._meter_lost = False
        self.manager.report_grid_meter(MeterFeed(reading.current_a, reading.power_w, "NORMAL"))

    def _on_meter_state(self, state: MeterState) -> None:
        if state is not MeterState.NORMAL:
            self._meter_lost = True  # SunSpec serves "not available" until a good reading
            self.manager.report_grid_meter(MeterFeed(None, None, str(state)))

    async def _start_sunspec(self) -> None:
        assert self.config.sunspec is not None
        written = read_json(self._state_dir / SUNSPEC_FILE)
        if "sunspec" in self.manager.leases.leases and isinstance(written, dict):
            percent = written.get("percent")  # what the operator wrote, kept over a restart
            if isinstance(percent, int | float) and not isinstance(percent, bool):
                self._percent = float(percent)
        server = SunSpecServer(self.config.sunspec, self._sunspec_values, self._on_sunspec)
        with listening("sunspec", self.config.sunspec.host, self.config.sunspec.port):
            port = await server.start()
        log.info("SunSpec Modbus server on %s:%d", self.config.sunspec.host, port)
        self._stoppers.append(server.stop)

    def _sunspec_values(self) -> SunSpecValues:
        reading = None if self._meter_lost else self._meter_reading
        status = self.manager.status()
        used = sum(max(e.power_w, 0.0) for e in status.evses)
        grid = MeterValues() if reading is None else MeterValues(
            current_l1_a=reading.current_a[0], current_l2_a=reading.current_a[1],
            current_l3_a=reading.current_a[2], power_w=reading.power_w,
            import_wh=reading.energy_import_wh, export_wh=reading.energy_export_wh)
        percent = 100.0 if self._percent is None else self._percent
        return SunSpecValues(grid=grid, evse_used=MeterValues(power_w=used),
                             parameters=Parameters(max_total_current_percent=percent))

    def _on_sunspec(self, write: object) -> None:
        if not isinstance(write, SetPercent):
            raise RequestError("only the power limit in percent (register 40968) is writable")
        write_json_atomic(self._state_dir / SUNSPEC_FILE, {"percent": write.value})
        self._percent = write.value
        self._operator_limit(SUNSPEC, self.percent_base_w() * write.value / 100.0,
                             f"{write.value:g} % via SunSpec register 40968")

    def _on_ripple(self, level: RippleLevel, inputs: object) -> None:
        self._inputs = (None, None) if not isinstance(inputs, tuple) else tuple(
            None if v is None else float(v) for v in inputs)  # type: ignore[assignment]
        self._operator_limit(RIPPLE, level.limit_w(self.percent_base_w()),
                             f"contacts {level.source}")

    def _start_upstream(self) -> None:
        assert self.config.ocpp_upstream is not None
        section = _under(self.config.ocpp_upstream, "profiles_path",
                         self._state_dir / "ocpp-profiles.json")
        client = UpstreamClient(section, read_meter=self._grid_reading,
                                on_profiles_changed=lambda _store: self._on_profiles(client))
        self._tasks.append(asyncio.create_task(client.run(), name="energytree-ocpp-upstream"))
        self._upstream = client
        self._tasks.append(asyncio.create_task(self._upstream_loop(client), name="et-ocpp"))

    async def _upstream_loop(self, client: UpstreamClient) -> None:
        """Recompute the operator's composite regularly: online, gaps mean "no limit";
        offline, profiles hold until their validTo and the failsafe fills the gaps."""
        assert self.config.ocpp_upstream is not None
        online: bool | None = None
        while True:
            if client.connected.is_set() != online:
                online = client.connected.is_set()
                self._on_profiles(client)
            await asyncio.sleep(self.config.ocpp_upstream.refresh_s)
            self._on_profiles(client, record=False)

    def _grid_reading(self) -> GridReading | None:
        reading = self._meter_reading
        if reading is None or reading.power_w is None:
            return None
        return GridReading(reading.power_w, reading.energy_import_wh, reading.current_a)

    def _on_profiles(self, client: UpstreamClient, record: bool = True) -> None:
        assert self.config.ocpp_upstream is not None
        now = self.manager_now()
        periods = list(client.limit_periods(now, 86_400))
        failsafe = self.config.ocpp_upstream.failsafe_power_W
        gaps = [p.current_a is None and p.power_w is None for p in periods]
        offline = failsafe is not None and not client.connected.is_set()
        if offline:  # the failsafe fills the gaps; in force now if the first one is a gap
            periods = [p.model_copy(update={"power_w": failsafe}) if gap else p
                       for p, gap in zip(periods, gaps, strict=True)]
        in_failsafe = offline and gaps[:1] == [True]
        limits = external_from_periods(periods, floor_w=self.floor_w(),
                                       voltage_v=self.config.nominal_voltage_V)
        self.manager.set_external_limits("ocpp", self.root, limits, own_failsafe=in_failsafe)
        if record:
            state = "online" if client.connected.is_set() else "offline"
            self.audit.record("ocpp", now, None, "profile", None,
                              f"composite schedule changed ({state})", channel="ocpp",
                              identity=self.config.ocpp_upstream.charge_point_id)

    async def _start_simulation(self) -> None:
        sim = self._simulation = SiteSimulation(self.config, self.manager,
                                                self._state_dir / "simulation.json", self.zone)
        self.simulated = sim.evses
        self._stoppers.append(sim.stop)
        self.manager.add_listener(sim.deliver)
        meter = self.config.meter
        if meter and self.config.simulation.grid_meter == "external":
            log.info("--simulate: simulated cars, the real grid meter at %s", meter.host)
            await self._start_meter(meter.host, meter.port)
        elif meter:
            port = await sim.start_meter(meter.register_map)
            log.warning("--simulate replaces the grid meter at %s with a simulated one on "
                        "127.0.0.1:%d (simulation.grid_meter: external keeps the real one)",
                        meter.host, port)
            await self._start_meter("127.0.0.1", port)
        self._tasks.append(asyncio.create_task(self._simulation_loop(), name="energytree-sim"))

    async def _simulation_loop(self) -> None:
        """Readings reach the session log in slices, a loop turn each (120 EVSEs: 20 ms of work)."""
        dt, simulation = self.config.tick_s, self._simulation
        assert simulation is not None
        while True:
            simulation.step(dt)
            if self.sessions is not None:
                evses, now = list(self.simulated.values()), self.manager_now()
                for first in range(0, len(evses), FEED_SLICE):
                    await asyncio.sleep(0)
                    self._feed.poll(evses[first:first + FEED_SLICE], now)
            await asyncio.sleep(dt)

    async def _status_loop(self) -> None:
        """A status block at once (a short run shows one too), then every interval."""
        while True:
            text = render_status(self.manager.status(), self.zone, self.simulated)
            if self._csms is not None and self._csms.offline:
                offline = ", ".join(sorted(self._csms.offline))
                text += f"\noffline (charger not connected): {offline}"
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            await asyncio.sleep(self.config.status_interval_s)


def _under(section: SectionT, field: str, default: Path) -> SectionT:
    """``section`` with ``field`` set to ``default`` (a file under ``--state-dir``) unless the
    site file names one: state survives a restart without any setting."""
    if getattr(section, field) is not None:
        return section
    return section.model_copy(update={field: default})


def _closer(db: Database, writer: BatchWriter) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        await asyncio.to_thread(writer.close)  # the last batch and a checkpoint
        db.close()

    return close


def _evse_phase_currents(sim: SimulatedEvse) -> tuple[float, float, float]:
    """A simulated EVSE's current on each of its own phases [A] (0 where it draws nothing)."""
    amps = sim.measurement().current_A
    assert amps is not None
    return amps.L1 or 0.0, amps.L2 or 0.0, amps.L3 or 0.0


def _plan(problem: Problem, budget: float, rotation: int) -> Plan:
    return optimise(problem, time_budget_s=budget, rotation=rotation)


def plausible_current_a(config: ServiceConfig) -> float:
    """The meter's default plausibility bound: 3 × the connection's current, at least 100 A.

    A reading beyond it is a wiring or register-map fault, never load the site can draw; a
    fixed bound would either reject a depot's honest 1250 A or accept a home's 900 A glitch.
    """
    grid = config.grid
    amps = config.meter.installation_max_current_A if config.meter else None
    if amps is None and isinstance(grid.max_current_A, float | int):
        amps = float(grid.max_current_A)
    if amps is None and isinstance(grid.max_power_W, float | int):
        amps = float(grid.max_power_W) / (grid.phases * config.nominal_voltage_V)
    return max(PLAUSIBLE_FACTOR * amps, PLAUSIBLE_MIN_A) if amps else PLAUSIBLE_UNKNOWN_A
