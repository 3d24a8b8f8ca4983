"""``csms``: the site's own chargers connect here over OCPP 1.6J and 2.0.1 on one port.

Their sessions reach the site's session log (or the supplier gateway) as they happen, so the
site does not report those EVSEs' sessions from the manager's view a second time.
"""

from __future__ import annotations

import logging

from adapters.ocpp.chargers import CsmsConfig
from adapters.ocpp.csms import CsmsServer
from energytree.app.plugs.base import Plug
from energytree.app.startup import listening

__all__ = ["CsmsPlug"]

log = logging.getLogger(__name__)


class CsmsPlug(Plug[CsmsConfig]):
    section = "csms"
    model = CsmsConfig
    summary = "the site's own chargers over OCPP 1.6J and 2.0.1 on one port"

    server: CsmsServer | None = None

    async def start(self) -> None:
        site = self.site
        config = site.under_state_dir(self.config, "state_path", "csms.json")
        self.server = CsmsServer(config, site.manager, clock=site.manager.clock)
        self.server.event_sink = site  # session events reach the site's session log
        self.closing(self.server.stop)
        with listening(self.section, config.host, config.port):
            await self.server.start()
        log.info("OCPP CSMS for chargers on %s:%d", config.host, self.server.port)


    def links(self) -> dict[str, bool]:
        server = self.server
        if server is None:
            return {}
        return {f"ocpp_charger/{charger}": charger in server.sessions
                for charger in server.chargers}

    def serves(self, evse: str) -> bool:
        return self.server is not None and self.server.serves(evse)

    def note(self) -> str | None:
        if self.server is None or not self.server.offline:
            return None
        return f"offline (charger not connected): {', '.join(sorted(self.server.offline))}"
