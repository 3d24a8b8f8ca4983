"""``simulation``: with ``serve --simulate``, simulated EVSEs with cars and a household.

It comes first in the registry: the ``meter`` plug asks it for the simulated grid meter.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from adapters.ocpp.evseport import SimulatedFeed
from energytree.app.plugs.base import Plug
from energytree.app.simconfig import SimulationSection
from energytree.app.simservice import SiteSimulation

if TYPE_CHECKING:
    from energytree.app.runtime import Service

__all__ = ["SimulationPlug"]

FEED_SLICE = 30  # simulated EVSEs whose readings reach the session log in one loop turn


class SimulationPlug(Plug[SimulationSection]):
    section = "simulation"
    model = SimulationSection
    summary = "used with serve --simulate: the simulated cars, household and grid meter"
    always = True

    simulation: SiteSimulation | None = None

    @classmethod
    def wanted(cls, site: Service) -> bool:
        return site.simulate

    async def start(self) -> None:
        site = self.site
        simulation = self.simulation = SiteSimulation(
            site.config, site.manager, site.state_dir / "simulation.json", site.zone)
        site.simulation, site.simulated = simulation, simulation.evses
        self.closing(simulation.stop)
        site.manager.add_listener(simulation.deliver)
        self.spawn(self._run(simulation), "sim")

    async def _run(self, simulation: SiteSimulation) -> None:
        """Step the simulation every tick; its readings reach the session log in slices, a
        loop turn each (120 EVSEs in one go: 20 ms of work without a pause)."""
        site, dt = self.site, self.site.config.tick_s
        feed = SimulatedFeed(site)
        while True:
            simulation.step(dt)
            evses, now = list(site.simulated.values()), site.manager_now()
            for first in range(0, len(evses), FEED_SLICE):
                await asyncio.sleep(0)
                feed.poll(evses[first:first + FEED_SLICE], now)
            await asyncio.sleep(dt)
