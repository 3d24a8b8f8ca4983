"""``serve --simulate``: simulated EVSEs with cars, a household, and a simulated grid meter.

Each EVSE of the site file gets a ``SimulatedEvse`` with the site's phases, rotation and phase
switching, and the car the ``simulation`` section describes. The cars' draw lands on the grid
phases their rotation names; the simulated Modbus meter serves household plus cars. Energy
registers (each EVSE's and the meter's) and the cars' state of charge are kept in the state
directory, so a restart continues where the last run stopped and session energy never goes
backwards.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.meter.registermap import load_register_map
from adapters.meter.simulator import MeterSimulator, meter_values
from energytree.app.simconfig import default_cars
from energytree.app.simulation import Household, SimulatedEvse
from energytree.errors import ConfigError, EnergyTreeError
from energytree.leaf import LimitReceiver
from energytree.manager import EnergyManager
from energytree.persist import read_json, write_json_atomic
from energytree.site import evse_configs
from energytree.types import EnforcedLimits

if TYPE_CHECKING:
    from energytree.app.service import ServiceConfig

__all__ = ["SiteSimulation"]

log = logging.getLogger(__name__)
SAVE_EVERY_S = 60.0


class SiteSimulation:
    """The simulated part of a site: ``step`` it, ``deliver`` it the manager's limits."""

    def __init__(self, config: ServiceConfig, manager: EnergyManager, state_path: Path,
                 zone: tzinfo) -> None:
        self.config = config
        self.manager = manager
        self.zone = zone
        self.state_path = state_path
        self.household = Household(scale=config.simulation.household_scale)
        cars = default_cars(config)
        self.evses = {
            evse.evse: SimulatedEvse(
                evse.evse, LimitReceiver(evse.evse), config.nominal_voltage_V,
                cars.get(evse.evse), evse_phases=evse.phases, phase_rotation=evse.phase_rotation,
                can_switch_phases=evse.phase_switching)
            for evse in evse_configs(config)
        }
        self.meter: MeterSimulator | None = None
        self._kept_meter_wh = (0.0, 0.0)
        self._since_save_s = 0.0
        self._restore()

    def deliver(self, limits: list[EnforcedLimits]) -> None:
        """A manager listener: each limit reaches its EVSE's receiver."""
        for item in limits:
            sim = self.evses.get(item.uuid)
            if sim is not None:
                sim.receiver.apply(item)

    def step(self, dt_s: float) -> None:
        """Advance every EVSE and tell the manager what each one measures and is doing."""
        for uuid, sim in self.evses.items():
            sim.step(dt_s)
            with contextlib.suppress(EnergyTreeError):
                self.manager.report_measurement(uuid, sim.measurement())
                self.manager.set_evse_state(uuid, sim.state)
        self._since_save_s += dt_s
        if self._since_save_s >= SAVE_EVERY_S:
            self.save()

    def grid_values(self) -> dict[str, float]:
        """What the grid meter measures now: household plus every car on its grid phases."""
        amps = list(self.household.current_a(self.manager.clock.now().astimezone(self.zone)))
        for sim in self.evses.values():
            for k, value in enumerate(sim.grid_currents_a()):
                amps[k] += value
        return meter_values((amps[0], amps[1], amps[2]), voltage_v=self.config.nominal_voltage_V)

    async def start_meter(self, register_map: str) -> int:
        """Serve the simulated grid meter on 127.0.0.1 (any free port); returns the port."""
        self.meter = MeterSimulator(load_register_map(register_map), self.grid_values,
                                    energy_wh=self._kept_meter_wh)
        return await self.meter.start()

    async def stop(self) -> None:
        """Stop the meter and keep the registers for the next run."""
        if self.meter is not None:
            await self.meter.stop()
        self.save()

    def save(self) -> None:
        self._since_save_s = 0.0
        meter_wh = self.meter.energy_wh if self.meter is not None else self._kept_meter_wh
        write_json_atomic(self.state_path, {
            "meter_wh": {"import": meter_wh[0], "export": meter_wh[1]},
            "evses": {uuid: {"import_wh": sim.import_wh,
                             "soc_percent": sim.car.soc_percent if sim.car else None}
                      for uuid, sim in self.evses.items()},
        })

    def _restore(self) -> None:
        """Registers and states of charge from the last run; a bad file is named, not used."""
        try:
            kept = _parse_state(read_json(self.state_path))
        except (ConfigError, AttributeError, KeyError, TypeError, ValueError) as exc:
            log.warning("%s: simulation state not restored (%s)", self.state_path, exc)
            return
        if kept is None:
            return
        self._kept_meter_wh, evses = kept
        for uuid, (import_wh, soc) in evses.items():
            sim = self.evses.get(uuid)
            if sim is None:
                continue  # the site file no longer has this EVSE
            sim.import_wh = import_wh
            if sim.car is not None and soc is not None:
                sim.car.soc_percent = soc


def _parse_state(data: object
                 ) -> tuple[tuple[float, float], dict[str, tuple[float, float | None]]] | None:
    """(meter import/export [Wh], {EVSE: (import [Wh], SoC [%])}) from the state file."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    meter = data["meter_wh"]
    meter_wh = (_register(meter["import"]), _register(meter["export"]))
    evses = {}
    for uuid, saved in data["evses"].items():
        soc = saved.get("soc_percent")
        evses[str(uuid)] = (_register(saved["import_wh"]),
                            None if soc is None else min(100.0, max(0.0, float(soc))))
    return meter_wh, evses


def _register(value: object) -> float:
    number = float(value)  # type: ignore[arg-type]
    if number < 0:
        raise ValueError(f"an energy register cannot be negative ({number})")
    return number
