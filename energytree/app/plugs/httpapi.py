"""``http_api``: the cFos-compatible HTTP API of variables, where the operator sets ``AVAIL``."""

from __future__ import annotations

import logging

from adapters.http import HttpApi, HttpApiConfig
from energytree.app.plugs.base import Plug
from energytree.app.startup import listening

__all__ = ["HttpApiPlug"]

log = logging.getLogger(__name__)


class HttpApiPlug(Plug[HttpApiConfig]):
    section = "http_api"
    model = HttpApiConfig
    summary = "the cFos-compatible HTTP API of variables (set_cm_vars, get_cm_vars)"

    api: HttpApi | None = None

    async def start(self) -> None:
        config = self.config
        self.api = HttpApi(config, self.site.variables, self.site.environment)
        self.closing(self.api.stop)
        with listening(self.section, config.host, config.port):
            port = await self.api.start()
        log.info("HTTP variables API on %s:%d", config.host, port)

