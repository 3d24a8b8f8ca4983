"""``energytree serve``: the site file's model and the serve loop.

The site file's planning part is ``SiteConfig``; ``ServiceSettings`` adds the live service's
own settings, and the registry (``energytree/app/plugs/registry.py``) one section per plug:
grid meter, HTTP variables API, dashboard, gRPC, SunSpec, ripple-control contacts, OCPP
towards the grid operator, the chargers and the supplier, simulation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from energytree.app.plugs.registry import site_file_model
from energytree.gridops import GZF
from energytree.heap import freeze_startup_heap, thaw_heap
from energytree.site import SiteConfig
from energytree.yamlfile import load_model

if TYPE_CHECKING:
    from energytree.app.runtime import Service

__all__ = ["ServiceConfig", "ServiceSettings", "load_service_config", "run_service"]

log = logging.getLogger(__name__)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class FourteenASection(_Section):
    """§14a EnWG: the least power any dimming command must leave to the controllable devices."""

    controllable_devices: int | None = Field(None, ge=1, description="default: EVSE count")
    gzf: dict[int, float] = Field(default_factory=lambda: dict(GZF),
                                  description="the simultaneity factor by number of devices")
    add_pv_surplus: bool = Field(True, description="local generation adds to the minimum")
    percent_base_W: float | None = Field(
        None, gt=0,
        description="what 100 % means in the operator's percentages (SunSpec 40968, "
        "CM._max_total_current_prc, ripple levels); default: the grid's max_power_W if it "
        "is a number, else max_current_A × phases × nominal_voltage_V [W]",
    )


class ServiceSettings(SiteConfig):
    """The site and the live service's own settings; the plugs add their sections."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    tick_s: float = Field(1.0, gt=0, le=60, description="[s] the live loop's period")
    plan_budget_s: float = Field(2.0, gt=0, le=60, description="[s] time one plan may take")
    status_interval_s: float = Field(5.0, gt=0, description="[s] between status blocks")
    prices: str | None = Field(
        None, description="price file: a JSON list of {timestamp, value, currency} or CSV "
        "timestamp,value; without it, prices saved in the state are dropped at start")
    session_log_interval_s: float = Field(
        300.0, ge=1, le=3600,
        description="a running session's counters reach the disk at most this often "
        "(starts and stops at once)",
    )
    fourteen_a: FourteenASection = Field(
        default_factory=FourteenASection,
        description="§14a EnWG: the least power a dimming command leaves")

    @model_validator(mode="after")
    def _one_nominal_voltage(self) -> ServiceSettings:
        """Sections that convert A ↔ W (the OCPP ones) do so at the site's
        ``nominal_voltage_V``. Their own ``nominal_voltage_v`` is deprecated: it may only
        repeat the site's value."""
        for name in type(self).model_fields:
            section = getattr(self, name)
            if not isinstance(section, BaseModel) or (
                    "nominal_voltage_v" not in type(section).model_fields):
                continue
            if ("nominal_voltage_v" in section.model_fields_set
                    and section.nominal_voltage_v != self.nominal_voltage_V):
                raise ValueError(
                    f"{name}.nominal_voltage_v = {section.nominal_voltage_v:g} V contradicts "
                    f"nominal_voltage_V = {self.nominal_voltage_V:g} V; remove it (deprecated: "
                    "one nominal voltage per site)")
            copy = section.model_copy(update={"nominal_voltage_v": self.nominal_voltage_V})
            object.__setattr__(self, name, copy)
        return self


ServiceConfig = site_file_model(ServiceSettings, "ServiceConfig")
"""A whole site file: the tree, the service's settings and one section per plug."""


def load_service_config(path: str | Path) -> ServiceConfig:
    return load_model(path, ServiceConfig)


def run_service(args: argparse.Namespace) -> int:
    """Run until Ctrl-C (or ``--duration``); returns the exit status."""
    config = load_service_config(args.site)
    from energytree.app.runtime import Service

    service = Service(config, Path(args.state_dir), simulate=args.simulate)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(service, args.duration))
    return 0


async def _serve(service: Service, duration: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:  # a start that fails half-way stops what already runs
        await service.start()
        freeze_startup_heap()  # full collections then skip the start-up heap (see heap.py)
        if duration is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=duration)
    finally:
        await service.stop()
        thaw_heap()
        sys.stdout.write("energytree stopped\n")
