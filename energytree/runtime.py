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
from zoneinfo import ZoneInfo

from adapters.grpc import GrpcServer
from adapters.http import HttpApi
from adapters.meter.client import GridMeterClient, MeterState
from adapters.meter.registermap import MeterReading, load_register_map
from adapters.meter.simulator import MeterSimulator, household_load_profile, meter_values
from adapters.ocpp.csms import CsmsServer
from adapters.ocpp.evseport import SimulatedFeed
from adapters.ocpp.forward import ChargerCommands
from adapters.ocpp.gateway import Gateway
from adapters.ocpp.sessions import (
    Database,
    SessionLog,
    SessionTracker,
    StateChanged,
)
from adapters.ocpp.sessions import (
    MeterReading as SessionReading,
)
from adapters.ocpp.upstream import GridReading, UpstreamClient
from adapters.ripple import RippleLevel, RippleReceiver
from adapters.sunspec import MeterValues, Parameters, SetPercent, SunSpecServer, SunSpecValues
from adapters.web import CarFacts, Dashboard, DashboardSite, SiteFeed, SiteMetrics
from energytree.audit import AuditLog
from energytree.errors import ConfigError, EnergyTreeError, RequestError
from energytree.formula import Formula
from energytree.formulaenv import EvseFacts, LiveFacts, SiteEnvironment, facts_to_names
from energytree.gridops import external_from_periods, pmin_14a_w, power_limit
from energytree.inputs import load_prices
from energytree.leaf import LimitReceiver
from energytree.manager import EnergyManager, ManagerOptions, MeterFeed
from energytree.plan import Plan
from energytree.problem import ExternalSource, PlanOptions, Problem
from energytree.service import ServiceConfig, default_cars
from energytree.simulation import SimulatedEvse
from energytree.site import FuseConfig, GridConfig, evse_configs, site_request
from energytree.statusview import render_status
from energytree.tasks import cancel_and_wait
from energytree.types import EnforcedLimits, ExternalLimits, LimitsReq, ScheduleReqEntry
from energytree.variables import VariableStore
from optimizer import optimise

__all__ = ["Service"]

log = logging.getLogger(__name__)
FORMULA = "formula"


class Service:
    """Build with a config; ``start``/``stop`` run every enabled part."""

    def __init__(self, config: ServiceConfig, state_dir: Path, simulate: bool = False) -> None:
        self.config = config
        self.simulate = simulate
        state_dir.mkdir(parents=True, exist_ok=True)
        self.zone = ZoneInfo(config.timezone)
        self.variables = VariableStore(state_dir / "variables.json")
        self.variables.load()
        self.audit = AuditLog(state_dir / "audit.sqlite")
        self._formulas = _site_formulas(config)
        self._formula_failed: set[str] = set()
        self._meter_reading: MeterReading | None = None
        self._inputs: tuple[float | None, float | None] = (None, None)
        self._percent: float | None = None
        options = ManagerOptions(
            tick_s=config.tick_s,
            plan=PlanOptions(config.slot_minutes * 60, config.horizon_hours * 3600,
                             config.nominal_voltage_V),
            plan_budget_s=config.plan_budget_s,
            safe_current_a=config.meter.safe_current_A if config.meter else 6.0,
            installation_max_a=(config.meter.installation_max_current_A if config.meter else None),
            meter_margin_a=config.meter.margin_A if config.meter else 1.0,
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
        )
        # time every tick without touching the manager: its loop calls this attribute
        self.manager.tick = self.metrics.observe_tick(  # type: ignore[method-assign]
            self.manager.tick)
        if config.prices:
            self.manager.set_prices(load_prices(config.prices))
        self.variables.subscribe(self._on_variables)
        self._parts: list[tuple[str, Awaitable[None] | None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stoppers: list = []
        self.simulated: dict[str, SimulatedEvse] = {}
        self._state_dir = state_dir
        self.sessions: SessionTracker | Gateway | None = None
        self._csms: CsmsServer | None = None
        self._upstream: UpstreamClient | None = None
        self.dashboard: Dashboard | None = None

    # ---- §14a and the operator channels ------------------------------------------------

    @property
    def root(self) -> str:
        return self.config.grid.uuid

    def connection_power_w(self) -> float:
        """The grid connection's power, what operator percentages refer to [W]."""
        grid = self.config.grid
        if isinstance(grid.max_power_W, float | int):
            return float(grid.max_power_W)
        amps = grid.max_current_A if isinstance(grid.max_current_A, float | int) else 63.0
        return float(amps) * grid.phases * self.config.nominal_voltage_V

    def floor_w(self) -> float:
        """§14a: dimming leaves at least Pmin (plus local surplus, if allowed) [W]."""
        section = self.config.fourteen_a
        devices = section.controllable_devices or len(evse_configs(self.config))
        floor = pmin_14a_w(devices, section.gzf)
        reading = self._meter_reading
        if section.add_pv_surplus and reading and reading.power_w is not None:
            floor += max(0.0, -reading.power_w)
        return floor

    def _operator_limit(self, source: str, watts: float, detail: str) -> None:
        now = self.manager_now()
        limited = max(watts, self.floor_w())
        self.manager.set_external_limits(source, self.root, power_limit(now, limited))
        grid_w = self._meter_reading.power_w if self._meter_reading else None
        self.audit.record(source, now, limited, "W", grid_w, detail)
        log.info("grid operator via %s: %.0f W (asked %.0f W; §14a floor %.0f W)",
                 source, limited, watts, self.floor_w())

    def _on_variables(self, names: frozenset[str]) -> None:
        """Variables changed (``set_cm_vars``): formulas apply them at once; the audit logs them."""
        self.manager.notify()
        now = self.manager_now()
        views = {view.name: view for view in self.variables.get_all(self.environment())}
        grid_w = self._meter_reading.power_w if self._meter_reading else None
        for name in sorted(names):
            view = views.get(name)
            if view is None:
                self.audit.end(f"CM.{name}", now)
            else:
                self.audit.record(f"CM.{name}", now, view.value, "", grid_w,
                                  f"{name} = {view.expr}")

    def manager_now(self) -> datetime:
        return self.manager.clock.now()

    def _formula_sources(self, now: datetime) -> list[ExternalSource]:
        """Site limits written as formulas, evaluated now (a failing one allows nothing)."""
        env = self.variables.environment(self.environment())
        sources = []
        for node, field, formula in self._formulas:
            try:
                value = max(0.0, formula.evaluate(env))
                self._formula_failed.discard(f"{node}.{field}")
            except EnergyTreeError as exc:
                if f"{node}.{field}" not in self._formula_failed:
                    log.warning("formula %s of %s failed (%s); using 0", field, node, exc)
                    self._formula_failed.add(f"{node}.{field}")
                value = 0.0
            if node == self.root:  # §14a: a dimming formula leaves at least Pmin
                floor = self.floor_w()
                if field == "max_current_A":
                    floor /= self.config.grid.phases * self.config.nominal_voltage_V
                value = max(value, floor)
            if field == "max_power_W":
                limits = LimitsReq(total_power_W=value)
            else:  # a charging rule is in mA, as in cFos
                amps = value / 1000.0 if field == "charging_rule" else value
                limits = LimitsReq(ac_max_current_A=amps)
            entry = ScheduleReqEntry(timestamp=now, limits_to_root=limits,
                                     limits_to_leaves=LimitsReq())
            sources.append(ExternalSource(FORMULA, node, ExternalLimits(schedule_import=[entry])))
        return sources

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
            current = (sim.current_a,) * 3 if sim else (0.0, 0.0, 0.0)
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
        if self.config.http_api:
            api = HttpApi(self.config.http_api, self.variables, self.environment)
            port = await api.start()
            log.info("HTTP variables API on %s:%d", self.config.http_api.host, port)
            self._stoppers.append(api.stop)
        if self.config.dashboard:
            await self._start_dashboard()
        if self.config.grpc:
            server = GrpcServer(self.config.grpc, self.manager, self.variables,
                                self.environment)
            port = await server.start()
            log.info("gRPC API on %s:%d", self.config.grpc.host, port)
            self._stoppers.append(server.stop)
        if self.config.sunspec:
            await self._start_sunspec()
        if self.config.ripple:
            receiver = RippleReceiver(self.config.ripple, on_change=self._on_ripple)
            await receiver.start()
            self._stoppers.append(receiver.stop)
        if self.config.ocpp_upstream:
            self._start_upstream()
        if self.config.csms:
            csms = self._csms = CsmsServer(self.config.csms, self.manager,
                                           clock=self.manager.clock)
            await csms.start()
            log.info("OCPP CSMS for chargers on %s:%d", self.config.csms.host, csms.port)
            self._stoppers.append(csms.stop)
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
            self.sessions = SessionTracker(SessionLog(db), self._tariff)
            self._stoppers.append(_closer(db))
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
        config = self.config.meter.model_copy(update={"host": host, "port": port})
        client = GridMeterClient(config, on_reading=self._on_meter_reading,
                                 on_state=self._on_meter_state)
        await client.start()
        self._meter = client
        self._stoppers.append(client.stop)

    def _on_meter_reading(self, reading: MeterReading) -> None:
        self._meter_reading = reading
        self.manager.report_grid_meter(MeterFeed(reading.current_a, reading.power_w, "NORMAL"))

    def _on_meter_state(self, state: MeterState) -> None:
        if state is not MeterState.NORMAL:
            self.manager.report_grid_meter(MeterFeed(None, None, str(state)))

    async def _start_sunspec(self) -> None:
        assert self.config.sunspec is not None
        kept = self.manager.leases.leases.get("sunspec")
        if kept is not None and kept.limits.schedule_import:  # a limit kept over a restart
            watts = kept.limits.schedule_import[0].limits_to_root.total_power_W
            if watts is not None:
                self._percent = round(100.0 * watts / self.connection_power_w(), 3)
        server = SunSpecServer(self.config.sunspec, self._sunspec_values, self._on_sunspec)
        port = await server.start()
        log.info("SunSpec Modbus server on %s:%d", self.config.sunspec.host, port)
        self._stoppers.append(server.stop)

    def _sunspec_values(self) -> SunSpecValues:
        reading = self._meter_reading
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
        self._percent = write.value
        self._operator_limit("sunspec", self.connection_power_w() * write.value / 100.0,
                             f"{write.value:g} % via SunSpec register 40968")

    def _on_ripple(self, level: RippleLevel, inputs: object) -> None:
        self._inputs = (None, None) if not isinstance(inputs, tuple) else tuple(
            None if v is None else float(v) for v in inputs)  # type: ignore[assignment]
        self._operator_limit("ripple", level.limit_w(self.connection_power_w()),
                             f"contacts {level.source}")

    def _start_upstream(self) -> None:
        assert self.config.ocpp_upstream is not None
        client = UpstreamClient(self.config.ocpp_upstream, read_meter=self._grid_reading,
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
        if failsafe is not None and not client.connected.is_set():
            periods = [p if p.current_a is not None or p.power_w is not None
                       else p.model_copy(update={"power_w": failsafe}) for p in periods]
        limits = external_from_periods(periods, floor_w=self.floor_w(),
                                       voltage_v=self.config.nominal_voltage_V)
        self.manager.set_external_limits("ocpp", self.root, limits)
        if record:
            state = "online" if client.connected.is_set() else "offline"
            self.audit.record("ocpp", now, None, "profile", None,
                              f"composite schedule changed ({state})")

    async def _start_simulation(self) -> None:
        receivers: dict[str, LimitReceiver] = {}
        for uuid, car in default_cars(self.config).items():
            receivers[uuid] = LimitReceiver(uuid)
            self.simulated[uuid] = SimulatedEvse(uuid, receivers[uuid],
                                                 self.config.nominal_voltage_V, car)
        self.manager.add_listener(lambda limits: _deliver(limits, receivers))
        if self.config.meter:
            rmap = load_register_map(self.config.meter.register_map)
            simulator = MeterSimulator(rmap, self._simulated_meter_values)
            port = await simulator.start()
            self._stoppers.append(simulator.stop)
            await self._start_meter("127.0.0.1", port)
        self._tasks.append(asyncio.create_task(self._simulation_loop(), name="energytree-sim"))

    def _simulated_meter_values(self) -> dict[str, float]:
        house = household_load_profile(self.manager_now().astimezone(self.zone))
        ev = [0.0, 0.0, 0.0]
        for sim in self.simulated.values():
            for k in range(sim.phases_used):
                ev[k] += sim.current_a
        return meter_values(tuple(h + e for h, e in zip(house, ev, strict=True)))

    async def _simulation_loop(self) -> None:
        dt = self.config.tick_s
        while True:
            for uuid, sim in self.simulated.items():
                sim.step(dt)
                with contextlib.suppress(EnergyTreeError):
                    self.manager.report_measurement(uuid, sim.measurement())
                    self.manager.set_evse_state(uuid, sim.state)
            if self.sessions is not None:
                self._feed.poll(self.simulated.values(), self.manager_now())
            await asyncio.sleep(dt)

    async def _status_loop(self) -> None:
        """A status block at once (a short run shows one too), then every interval."""
        while True:
            text = render_status(self.manager.status(), self.zone, self.simulated)
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            await asyncio.sleep(self.config.status_interval_s)


def _closer(db: Database) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        db.close()

    return close


def _deliver(limits: list[EnforcedLimits], receivers: dict[str, LimitReceiver]) -> None:
    for item in limits:
        receiver = receivers.get(item.uuid)
        if receiver is not None:
            receiver.apply(item)


def _plan(problem: Problem, budget: float, rotation: int) -> Plan:
    return optimise(problem, time_budget_s=budget, rotation=rotation)


def _site_formulas(config: ServiceConfig) -> list[tuple[str, str, Formula]]:
    """Every limit of the site file written as a formula, parsed once (errors name it)."""
    found = []

    def visit(uuid: str, node: GridConfig | FuseConfig | object) -> None:
        for field in ("max_current_A", "max_power_W", "charging_rule"):
            text = getattr(node, field, None)
            if isinstance(text, str):
                try:
                    found.append((uuid, field, Formula.parse(text)))
                except EnergyTreeError as exc:
                    raise ConfigError(f"{uuid}.{field}: {exc}") from exc
        for child in getattr(node, "children", []):
            visit(getattr(child, "fuse", None) or getattr(child, "evse", ""), child)

    visit(config.grid.uuid, config.grid)
    return found
