"""``ocpp_upstream``: the site as one OCPP charge point of the grid operator's backend.

The backend's charging profiles become one composite schedule, an external limit on the root
(never below the §14a minimum). Online, its gaps mean "no limit"; offline, the profiles hold
until their ``validTo`` and ``failsafe_power_W`` fills the gaps.
"""

from __future__ import annotations

import asyncio

from pydantic import Field

from adapters.ocpp.upstream import GridReading, UpstreamClient, UpstreamConfig
from energytree.app.plugs.base import Plug
from energytree.gridops import external_from_periods

__all__ = ["OcppUpstreamPlug", "OcppUpstreamSection"]

HORIZON_S = 86_400
SOURCE = "ocpp"  # the external limit on the root


class OcppUpstreamSection(UpstreamConfig):
    """The site as one charge point towards the grid operator's backend."""

    failsafe_power_W: float | None = Field(
        None, ge=0,
        description="while the backend is unreachable and no profile covers the moment; "
        "None: no limit then (never below the §14a minimum)",
    )
    refresh_s: float = Field(30.0, gt=0, description="how often the composite is recomputed")


class OcppUpstreamPlug(Plug[OcppUpstreamSection]):
    section = "ocpp_upstream"
    model = OcppUpstreamSection
    summary = "the site as one OCPP charge point of the grid operator's backend"
    limit_source = SOURCE

    client: UpstreamClient | None = None

    async def start(self) -> None:
        site = self.site
        config = site.under_state_dir(self.config, "profiles_path", "ocpp-profiles.json")
        self.client = client = UpstreamClient(
            config, read_meter=self._grid_reading,
            on_profiles_changed=lambda _store: self._apply(client))
        self.spawn(client.run(), "ocpp-upstream")
        self.spawn(self._refresh(client), "ocpp")

    async def stop(self) -> None:
        if self.client is not None:
            self.client.stopping = True  # no reconnect while its task is being cancelled
        await super().stop()

    def links(self) -> dict[str, bool]:
        return {} if self.client is None else {"ocpp_upstream": self.client.connected.is_set()}

    async def _refresh(self, client: UpstreamClient) -> None:
        """Recompute the composite regularly, and at once when the link comes or goes."""
        online: bool | None = None
        while True:
            if client.connected.is_set() != online:
                online = client.connected.is_set()
                self._apply(client)
            await asyncio.sleep(self.config.refresh_s)
            self._apply(client, record=False)

    def _grid_reading(self) -> GridReading | None:
        reading = self.site.meter_reading
        if reading is None or reading.power_w is None:
            return None
        return GridReading(reading.power_w, reading.energy_import_wh, reading.current_a)

    def _apply(self, client: UpstreamClient, record: bool = True) -> None:
        site = self.site
        now = site.manager_now()
        periods = list(client.limit_periods(now, HORIZON_S))
        failsafe = self.config.failsafe_power_W
        gaps = [p.current_a is None and p.power_w is None for p in periods]
        offline = failsafe is not None and not client.connected.is_set()
        if offline:  # the failsafe fills the gaps; in force now if the first one is a gap
            periods = [p.model_copy(update={"power_w": failsafe}) if gap else p
                       for p, gap in zip(periods, gaps, strict=True)]
        in_failsafe = offline and gaps[:1] == [True]
        limits = external_from_periods(periods, floor_w=site.floor_w(),
                                       voltage_v=site.config.nominal_voltage_V)
        site.manager.set_external_limits(SOURCE, site.root, limits,
                                         own_failsafe=in_failsafe)
        if record:
            state = "online" if client.connected.is_set() else "offline"
            site.audit.record(SOURCE, now, None, "profile", None,
                              f"composite schedule changed ({state})", channel="ocpp",
                              identity=self.config.charge_point_id)
