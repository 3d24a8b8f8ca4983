"""``ocpp_gateway``: every EVSE as its own OCPP charge point of the supplier's backend.

The gateway takes the place of the site's session log and mirrors every session upstream;
with a ``csms`` section (started before it) the supplier's commands reach the OCPP chargers.
"""

from __future__ import annotations

from adapters.ocpp.forward import ChargerCommands
from adapters.ocpp.gateway import Gateway, GatewayConfig
from energytree.app.plugs.base import Plug
from energytree.app.plugs.csms import CsmsPlug
from energytree.site import evse_configs

__all__ = ["GatewayPlug"]


class GatewayPlug(Plug[GatewayConfig]):
    section = "ocpp_gateway"
    model = GatewayConfig
    summary = "every EVSE as its own OCPP charge point of the supplier's backend"

    gateway: Gateway | None = None

    async def start(self) -> None:
        site = self.site
        gateway = self.gateway = Gateway(self.config, site.manager,
                                         [e.evse for e in evse_configs(site.config)],
                                         tariff=site.tariff)
        csms = site.plugs.get(CsmsPlug.section)
        if isinstance(csms, CsmsPlug) and csms.server is not None:
            gateway.commands = ChargerCommands(csms.server, gateway.commands)
        await gateway.start()
        self.closing(gateway.stop)
        site.sessions = gateway


    def links(self) -> dict[str, bool]:
        if self.gateway is None:
            return {}
        return {f"ocpp_gateway/{uuid}": link.connected.is_set()
                for uuid, link in self.gateway.links.items()}
