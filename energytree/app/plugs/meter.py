"""``meter``: the grid meter for active load balancing, polled over Modbus TCP (Alfen-style).

With ``serve --simulate`` and ``simulation.grid_meter: simulated`` the simulation's meter on
127.0.0.1 stands in for the configured one, and the log says so.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pydantic import Field

from adapters.meter.client import GridMeterClient, GridMeterConfig
from energytree.app.plugs.base import Plug

if TYPE_CHECKING:
    from energytree.app.service import ServiceConfig

__all__ = ["MeterPlug", "MeterSection", "plausible_current_a"]

log = logging.getLogger(__name__)
PLAUSIBLE_FACTOR, PLAUSIBLE_MIN_A, PLAUSIBLE_UNKNOWN_A = 3.0, 100.0, 1000.0


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


class MeterPlug(Plug[MeterSection]):
    section = "meter"
    model = MeterSection
    summary = "the grid meter: the household's load lowers what the EVSEs get"

    client: GridMeterClient | None = None

    async def start(self) -> None:
        site, config = self.site, self.config
        host, port = config.host, config.port
        simulation = site.simulation
        if simulation is not None and site.config.simulation.grid_meter == "simulated":
            port = await simulation.start_meter(config.register_map)
            log.warning("--simulate replaces the grid meter at %s with a simulated one on "
                        "127.0.0.1:%d (simulation.grid_meter: external keeps the real one)",
                        host, port)
            host = "127.0.0.1"
        elif simulation is not None:
            log.info("--simulate: simulated cars, the real grid meter at %s", host)
        update: dict[str, object] = {"host": host, "port": port}
        if "max_plausible_current_a" not in config.model_fields_set:
            update["max_plausible_current_a"] = plausible_current_a(site.config)
        self.client = GridMeterClient(config.model_copy(update=update),
                                      on_reading=site.on_meter_reading,
                                      on_state=site.on_meter_state)
        await self.client.start()
        self.closing(self.client.stop)



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
