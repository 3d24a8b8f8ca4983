"""The live demo site with every port on 0, run through ``Service`` (what ``serve`` runs)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml

from energytree.app.plugs.httpapi import HttpApiPlug
from energytree.app.runtime import Service
from energytree.app.service import ServiceConfig

ROOT = Path(__file__).resolve().parents[1]
OPERATOR = ("admin", "operator-password")
VIEWER = ("viewer", "viewer-password")


def demo_config(**changes: Any) -> ServiceConfig:
    """examples/live-home.yaml on free loopback ports, ticking fast, with a viewer login."""
    data = yaml.safe_load((ROOT / "examples" / "live-home.yaml").read_text(encoding="utf-8"))
    data["http_api"].update(port=0, username=OPERATOR[0], password=OPERATOR[1])
    data["grpc"]["port"] = 0
    data["sunspec"]["port"] = 0
    data["dashboard"] = {"host": "127.0.0.1", "port": 0, "username": VIEWER[0],
                         "password": VIEWER[1], "refresh_s": 0.2}
    data.update(tick_s=0.1, status_interval_s=3600, plan_budget_s=1, **changes)
    return ServiceConfig.model_validate(data)


@asynccontextmanager
async def running_demo(state_dir: Path, **changes: Any) -> AsyncIterator[tuple[Service, str]]:
    """The service with its simulation; yields it and the dashboard's base URL."""
    service = Service(demo_config(**changes), state_dir, simulate=True)
    await service.start()
    try:
        assert service.dashboard is not None and service.dashboard.port is not None
        yield service, f"http://127.0.0.1:{service.dashboard.port}"
    finally:
        await service.stop()


def http_api_url(service: Service) -> str:
    """The variables API's base URL (its listener bound port 0)."""
    plug = service.plugs["http_api"]
    assert isinstance(plug, HttpApiPlug) and plug.api is not None
    return f"http://127.0.0.1:{plug.api.port}"
