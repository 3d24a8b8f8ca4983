"""``dashboard``: the web page and Prometheus ``/metrics`` (``docs/dashboard.md``).

The ``http_api`` section's credentials log in as the operator, who may also change variables.
"""

from __future__ import annotations

import sys

from adapters.web import Dashboard, DashboardConfig, DashboardSite, SiteFeed
from energytree.app.plugs.base import Plug
from energytree.app.startup import listening

__all__ = ["DashboardPlug"]


class DashboardPlug(Plug[DashboardConfig]):
    section = "dashboard"
    model = DashboardConfig
    summary = "the web page and Prometheus /metrics"

    dashboard: Dashboard | None = None

    async def start(self) -> None:
        site, config = self.site, self.config
        feed = SiteFeed(site.config.name, site.zone, site.manager,
                        lambda: site.variables.get_all(site.environment()), site.connections,
                        site.formula_sources)
        api = site.config.http_api
        operator = None if api is None else (api.username, api.password.get_secret_value())
        board = DashboardSite(feed, site.metrics, site.variables, site.audit,
                              lambda: getattr(site.sessions, "log", None), site.car_facts,
                              operator)
        self.dashboard = site.dashboard = Dashboard(config, board)
        with listening(self.section, config.host, config.port):
            port = await self.dashboard.start()
        self.closing(self.dashboard.stop)
        site.metrics.watch(self.dashboard.snapshot)
        scheme = "https" if config.tls_cert else "http"
        sys.stdout.write(f"dashboard: {scheme}://{config.host}:{port}/  (metrics: /metrics)\n")
        sys.stdout.flush()

