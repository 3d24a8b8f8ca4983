"""``sunspec``: a Modbus TCP SunSpec server; register 40968 dims the site in percent.

The percentage last written survives a restart (``sunspec.json`` in the state directory);
reads serve the grid meter (``not available`` while it is lost) and the EVSEs' draw.
"""

from __future__ import annotations

import logging

from adapters.sunspec import (
    MeterValues,
    Parameters,
    SetPercent,
    SunSpecServer,
    SunSpecServerConfig,
    SunSpecValues,
)
from energytree.app.plugs.base import Plug
from energytree.app.startup import listening
from energytree.errors import RequestError
from energytree.persist import read_json, write_json_atomic
from energytree.variables import Origin

__all__ = ["SUNSPEC", "SunSpecPlug"]

log = logging.getLogger(__name__)
SUNSPEC_FILE = "sunspec.json"  # the percentage last written to 40968
SUNSPEC = Origin("sunspec", "Modbus master")  # Modbus TCP carries no identity


class SunSpecPlug(Plug[SunSpecServerConfig]):
    section = "sunspec"
    model = SunSpecServerConfig
    summary = "a Modbus TCP SunSpec server: 40968 is the operator's limit in percent"
    limit_source = "sunspec"

    server: SunSpecServer | None = None
    percent: float | None = None  # what the operator wrote last

    async def start(self) -> None:
        site, config = self.site, self.config
        written = read_json(site.state_dir / SUNSPEC_FILE)
        if self.limit_source in site.manager.leases.leases and isinstance(written, dict):
            percent = written.get("percent")  # what the operator wrote, kept over a restart
            if isinstance(percent, int | float) and not isinstance(percent, bool):
                self.percent = float(percent)
        self.server = SunSpecServer(config, self._values, self._on_write)
        with listening(self.section, config.host, config.port):
            port = await self.server.start()
        self.closing(self.server.stop)
        log.info("SunSpec Modbus server on %s:%d", config.host, port)


    def _values(self) -> SunSpecValues:
        reading = self.site.grid_meter_reading()
        used = sum(max(e.power_w, 0.0) for e in self.site.manager.status().evses)
        grid = MeterValues() if reading is None else MeterValues(
            current_l1_a=reading.current_a[0], current_l2_a=reading.current_a[1],
            current_l3_a=reading.current_a[2], power_w=reading.power_w,
            import_wh=reading.energy_import_wh, export_wh=reading.energy_export_wh)
        percent = 100.0 if self.percent is None else self.percent
        return SunSpecValues(grid=grid, evse_used=MeterValues(power_w=used),
                             parameters=Parameters(max_total_current_percent=percent))

    def _on_write(self, write: object) -> None:
        if not isinstance(write, SetPercent):
            raise RequestError("only the power limit in percent (register 40968) is writable")
        site = self.site
        write_json_atomic(site.state_dir / SUNSPEC_FILE, {"percent": write.value})
        self.percent = write.value
        site.operator_limit(SUNSPEC, site.percent_base_w() * write.value / 100.0,
                            f"{write.value:g} % via SunSpec register 40968")
