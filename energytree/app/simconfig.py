"""The ``simulation`` section: the cars ``serve --simulate`` puts at the EVSEs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from energytree.app.simulation import SimulatedCar
from energytree.site import evse_configs

if TYPE_CHECKING:
    from energytree.app.service import ServiceConfig

__all__ = ["CarSection", "SimulationSection", "default_cars"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class CarSection(_Section):
    battery_kWh: float = Field(60.0, gt=0, description="[kWh] the car's battery")
    soc_percent: float = Field(30.0, ge=0, le=100, description="[%] at the first start")
    max_current_A: float = Field(16.0, gt=0, description="[A] per phase, the most it draws")
    min_current_A: float = Field(6.0, ge=0, description="below this the car pauses")
    phases: int = Field(3, ge=1, le=3, description="the car's own charger; 1 on any EVSE")
    taper_soc: float = Field(80.0, ge=0, le=100, description="tapers to its minimum above")
    lag_s: float = Field(1.0, ge=0, le=10, description="how late it follows a new limit")


class SimulationSection(_Section):
    """Simulated cars (per EVSE uuid; EVSEs not listed get a default car unless unplugged)."""

    cars: dict[str, CarSection] = Field(default_factory=dict, description="by EVSE uuid")
    meter_register_map: str = Field("socomec-countis-e27",
                                    description="the simulated grid meter's registers")
    grid_meter: Literal["simulated", "external"] = Field(
        "simulated", description="simulated: replaces the meter section's meter with one on "
        "127.0.0.1; external: simulated cars, the real meter")
    household_scale: float = Field(1.0, ge=0, le=20, description="of the household profile")


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
