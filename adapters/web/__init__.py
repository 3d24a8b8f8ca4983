"""The web dashboard and Prometheus ``/metrics`` (the site file's ``dashboard:`` section)."""

from adapters.web.app import Dashboard, DashboardSite
from adapters.web.config import DashboardConfig
from adapters.web.forms import CarFacts
from adapters.web.metrics import SiteMetrics
from adapters.web.snapshot import SiteFeed

__all__ = ["CarFacts", "Dashboard", "DashboardConfig", "DashboardSite", "SiteFeed", "SiteMetrics"]
