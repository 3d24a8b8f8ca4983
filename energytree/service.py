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
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from adapters.grpc import GrpcServerConfig
from adapters.http import HttpApiConfig
from adapters.meter.client import GridMeterConfig
from adapters.ocpp.chargers import CsmsConfig
from adapters.ocpp.gateway import GatewayConfig
from adapters.ocpp.upstream import UpstreamConfig
from adapters.ripple import RippleConfig
from adapters.sunspec import SunSpecServerConfig
from adapters.web import DashboardConfig
from energytree.gridops import GZF
from energytree.simulation import SimulatedCar
from energytree.site import SiteConfig, evse_configs
from energytree.yamlfile import load_model

if TYPE_CHECKING:
    from energytree.runtime import Service

__all__ = ["ServiceConfig", "run_service"]

log = logging.getLogger(__name__)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class MeterSection(GridMeterConfig):
    """The grid meter for active load balancing (Alfen-style)."""

    safe_current_A: float = Field(6.0, ge=0, description="per phase for all EVSEs while silent")
    margin_A: float = Field(1.0, ge=0, description="kept free below the installation maximum")
    installation_max_current_A: float | None = Field(
        None, gt=0, description="default: the grid connection's max_current_A"
    )


class FourteenASection(_Section):
    """§14a EnWG: the least power any dimming command must leave to the controllable devices."""

    controllable_devices: int | None = Field(None, ge=1, description="default: EVSE count")
    gzf: dict[int, float] = Field(default_factory=lambda: dict(GZF))
    add_pv_surplus: bool = True


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
    phases: int = Field(3, ge=1, le=3)


class SimulationSection(_Section):
    """Simulated cars (per EVSE uuid; EVSEs not listed get a default car unless unplugged)."""

    cars: dict[str, CarSection] = Field(default_factory=dict)
    meter_register_map: str = "socomec-countis-e27"


class ServiceConfig(SiteConfig):
    """A whole site file: the tree plus the sections for the live service."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    tick_s: float = Field(1.0, gt=0, le=60)
    plan_budget_s: float = Field(2.0, gt=0, le=60)
    status_interval_s: float = Field(5.0, gt=0)
    prices: str | None = Field(None, description="price file (JSON or CSV)")
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
        cars[evse.evse] = SimulatedCar(spec.battery_kWh, spec.soc_percent, spec.max_current_A,
                                       spec.phases)
    return cars


def run_service(args: argparse.Namespace) -> int:
    """Run until Ctrl-C (or ``--duration``); returns the exit status."""
    config = load_service_config(args.site)
    from energytree.runtime import Service

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
    await service.start()
    try:
        if duration is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=duration)
    finally:
        await service.stop()
        sys.stdout.write("energytree stopped\n")
