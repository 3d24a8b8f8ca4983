"""Every plug, in start order (stop order is the reverse), and the site-file model they make.

Adding a channel: write its plug (one module in this package) and add it here. The order
matters where one plug uses another: the simulation before the meter (its simulated meter),
the CSMS before the gateway (the supplier's commands reach the OCPP chargers).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model

from energytree.app.plugs.base import Plug
from energytree.app.plugs.csms import CsmsPlug
from energytree.app.plugs.dashboard import DashboardPlug
from energytree.app.plugs.gateway import GatewayPlug
from energytree.app.plugs.grpcapi import GrpcPlug
from energytree.app.plugs.httpapi import HttpApiPlug
from energytree.app.plugs.meter import MeterPlug
from energytree.app.plugs.ripple import RipplePlug
from energytree.app.plugs.simulation import SimulationPlug
from energytree.app.plugs.sunspec import SunSpecPlug
from energytree.app.plugs.upstream import OcppUpstreamPlug

__all__ = ["PLUGS", "site_file_model"]

PLUGS: tuple[type[Plug[Any]], ...] = (
    SimulationPlug,
    MeterPlug,
    HttpApiPlug,
    DashboardPlug,
    GrpcPlug,
    SunSpecPlug,
    RipplePlug,
    OcppUpstreamPlug,
    CsmsPlug,
    GatewayPlug,
)


def site_file_model(base: type[BaseModel], name: str,
                    plugs: tuple[type[Plug[Any]], ...] = PLUGS) -> type[BaseModel]:
    """``base`` (the site and the service's own settings) with one field per plug's section."""
    sections: dict[str, Any] = {}
    for plug in plugs:
        if plug.always:
            sections[plug.section] = (plug.model, Field(default_factory=plug.model,
                                                        description=plug.summary))
        else:
            sections[plug.section] = (plug.model | None, Field(None, description=plug.summary))
    return create_model(name, __base__=base, __module__=base.__module__, **sections)
