"""``grpc``: the gRPC API for clients and the grid operator (``proto/``)."""

from __future__ import annotations

import logging

from adapters.grpc import GrpcServer, GrpcServerConfig
from energytree.app.plugs.base import Plug
from energytree.app.startup import listening

__all__ = ["GrpcPlug"]

log = logging.getLogger(__name__)


class GrpcPlug(Plug[GrpcServerConfig]):
    section = "grpc"
    model = GrpcServerConfig
    summary = "the gRPC API (proto/energytree.proto)"

    server: GrpcServer | None = None

    async def start(self) -> None:
        site, config = self.site, self.config
        self.server = GrpcServer(config, site.manager, site.variables, site.environment,
                                 site.audit)
        self.closing(self.server.stop)
        with listening(self.section, config.host, config.port):
            port = await self.server.start()
        log.info("gRPC API on %s:%d", config.host, port)

