"""``energytree serve``: the manager with the adapters a site file enables (composition root).

The site file's planning part is ``SiteConfig``; this module adds one optional section per
adapter (grid meter, HTTP variables API, SunSpec server, ripple-control contacts, OCPP towards
the grid operator, simulation). Each grid-operator channel becomes its own external-limit
source on the root, floored at the §14a minimum, and recorded in the audit log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.grpc import GrpcServerConfig
from adapters.http import HttpApiConfig
from adapters.meter.client import GridMeterConfig
from adapters.ocpp.chargers import CsmsConfig
from adapters.ocpp.gateway import GatewayConfig
from adapters.ocpp.upstream import UpstreamConfig
from adapters.ripple import RippleConfig
from adapters.sunspec import SunSpecServerConfig
from adapters.web import DashboardConfig
from energytree.app.simulation import SimulatedCar
from energytree.gridops import GZF
from energytree.heap import freeze_startup_heap, thaw_heap
from energytree.site import SiteConfig, evse_configs
from energytree.yamlfile import load_model

if TYPE_CHECKING:
    from energytree.app.runtime import Service

__all__ = ["ServiceConfig", "run_service"]

log = logging.getLogger(__name__)
OCPP_SECTIONS = ("ocpp_upstream", "ocpp_gateway", "csms")  # each converts A ↔ W


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class MeterSection(GridMeterConfig):
    """The grid meter for active load balancing (Alfen-style)."""

    safe_current_A: float = Field(
        6.0, ge=0, description="[A] per phase for all EVSEs together (a site total) while the "
        "meter is not NORMAL")
    margin_A: float = Field(1.0, ge=0, description="kept free below the installation maximum")
    installation_max_current_A: float | None = Field(
        None, gt=0, description="default: the grid connection's max_current_A"
    )
    car_response_s: float = Field(
        6.0, gt=0, le=120,
        description="[s] cars draw a new limit within this; the meter loop waits this long "
        "plus poll_interval_s before raising again",
    )


class FourteenASection(_Section):
    """§14a EnWG: the least power any dimming command must leave to the controllable devices."""

    controllable_devices: int | None = Field(None, ge=1, description="default: EVSE count")
    gzf: dict[int, float] = Field(default_factory=lambda: dict(GZF))
    add_pv_surplus: bool = True
    percent_base_W: float | None = Field(
        None, gt=0,
        description="what 100 % means in the operator's percentages (SunSpec 40968, "
        "CM._max_total_current_prc, ripple levels); default: the grid's max_power_W if it "
        "is a number, else max_current_A × phases × nominal_voltage_V [W]",
    )


class OcppUpstreamSection(UpstreamConfig):
    """The site as one charge point towards the grid operator's backend."""

    failsafe_power_W: float | None = Field(
        None, ge=0,
        description="while the backend is unreachable and no profile covers the moment; "
        "None: no limit then (never below the §14a minimum)",
    )
    refresh_s: float = Field(30.0, gt=0, description="how often the composite is recomputed")


class CarSection(_Section):
    battery_kWh: float = Field(60.0, gt=0)
    soc_percent: float = Field(30.0, ge=0, le=100)
    max_current_A: float = Field(16.0, gt=0)
    min_current_A: float = Field(6.0, ge=0, description="below this the car pauses")
    phases: int = Field(3, ge=1, le=3, description="the car's own charger; 1 on any EVSE")
    taper_soc: float = Field(80.0, ge=0, le=100, description="tapers to its minimum above")
    lag_s: float = Field(1.0, ge=0, le=10, description="how late it follows a new limit")


class SimulationSection(_Section):
    """Simulated cars (per EVSE uuid; EVSEs not listed get a default car unless unplugged)."""

    cars: dict[str, CarSection] = Field(default_factory=dict)
    meter_register_map: str = "socomec-countis-e27"
    grid_meter: Literal["simulated", "external"] = Field(
        "simulated", description="simulated: replaces the meter section's meter with one on "
        "127.0.0.1; external: simulated cars, the real meter")
    household_scale: float = Field(1.0, ge=0, le=20, description="of the household profile")


class ServiceConfig(SiteConfig):
    """A whole site file: the tree plus the sections for the live service."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    tick_s: float = Field(1.0, gt=0, le=60)
    plan_budget_s: float = Field(2.0, gt=0, le=60)
    status_interval_s: float = Field(5.0, gt=0)
    prices: str | None = Field(None, description="price file (JSON or CSV)")
    session_log_interval_s: float = Field(
        300.0, ge=1, le=3600,
        description="a running session's counters reach the disk at most this often "
        "(starts and stops at once)",
    )
    meter: MeterSection | None = None
    fourteen_a: FourteenASection = Field(default_factory=FourteenASection)
    http_api: HttpApiConfig | None = None
    sunspec: SunSpecServerConfig | None = None
    ripple: RippleConfig | None = None
    ocpp_upstream: OcppUpstreamSection | None = None
    grpc: GrpcServerConfig | None = None
    ocpp_gateway: GatewayConfig | None = None
    csms: CsmsConfig | None = None
    dashboard: DashboardConfig | None = None
    simulation: SimulationSection = Field(default_factory=SimulationSection)

    @model_validator(mode="after")
    def _one_nominal_voltage(self) -> ServiceConfig:
        """The OCPP sections convert A ↔ W at the site's ``nominal_voltage_V``. Their own
        ``nominal_voltage_v`` is deprecated: it may only repeat the site's value."""
        for name in OCPP_SECTIONS:
            section = getattr(self, name)
            if section is None:
                continue
            if ("nominal_voltage_v" in section.model_fields_set
                    and section.nominal_voltage_v != self.nominal_voltage_V):
                raise ValueError(
                    f"{name}.nominal_voltage_v = {section.nominal_voltage_v:g} V contradicts "
                    f"nominal_voltage_V = {self.nominal_voltage_V:g} V; remove it (deprecated: "
                    "one nominal voltage per site)")
            copy = section.model_copy(update={"nominal_voltage_v": self.nominal_voltage_V})
            object.__setattr__(self, name, copy)
        return self


def load_service_config(path: str | Path) -> ServiceConfig:
    return load_model(path, ServiceConfig)


def default_cars(config: ServiceConfig) -> dict[str, SimulatedCar]:
    """A car at every EVSE that is not unplugged, as the simulation section says."""
    cars = {}
    for evse in evse_configs(config):
        spec = config.simulation.cars.get(evse.evse)
        if spec is None and evse.state is not None and evse.state.value == "Unplugged":
            continue
        spec = spec or CarSection(
            battery_kWh=evse.battery_kWh or 60.0,
            soc_percent=(evse.target.car_battery_soc if evse.target else None) or 30.0,
            max_current_A=evse.max_current_A if isinstance(evse.max_current_A, float) else 16.0,
            phases=evse.phases,
        )
        cars[evse.evse] = SimulatedCar(
            spec.battery_kWh, spec.soc_percent, spec.max_current_A, spec.phases,
            taper_soc=spec.taper_soc, min_current_a=spec.min_current_A, lag_s=spec.lag_s)
    return cars


def run_service(args: argparse.Namespace) -> int:
    """Run until Ctrl-C (or ``--duration``); returns the exit status."""
    config = load_service_config(args.site)
    from energytree.app.runtime import Service

    service = Service(config, Path(args.state_dir), simulate=args.simulate)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(service, args.duration))
    return 0


async def _serve(service: Service, duration: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:  # a start that fails half-way stops what already runs
        await service.start()
        freeze_startup_heap()  # full collections then skip the start-up heap (see heap.py)
        if duration is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=duration)
    finally:
        await service.stop()
        thaw_heap()
        sys.stdout.write("energytree stopped\n")
