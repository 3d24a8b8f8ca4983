"""The OCPP links through the service wiring (``Service``, what ``energytree serve`` runs).

Real peers on 127.0.0.1: an ``ocpp`` library backend for the site's upstream link and the
supplier gateway, ``ocpp`` library chargers for the CSMS. Each case runs for 1.6 and 2.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.ocpp.upstream import GridReading
from adapters.ocpp.versions import BY_NAME
from energytree.runtime import Service
from tests.integration.test_ocpp_csms import until
from tests.integration.test_ocpp_upstream import Csms, CsmsSession, set_profile
from tests.integration.test_runtime import running, site

VERSIONS = pytest.mark.parametrize("version", ["1.6", "2.0.1"])
HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)
INTERVALS = 30  # "ten minutes" of 20 s meter intervals, at 0.05 s each


@pytest.fixture
async def backend() -> AsyncIterator[Csms]:
    """The grid operator's (or supplier's) backend: the ``ocpp`` library on 127.0.0.1."""
    peer = Csms()
    await peer.start()
    yield peer
    await peer.stop()


class AsyncReaderService(Service):
    """The same service with a coroutine as the upstream's meter reader (an embedding's)."""

    async def _grid_reading(self) -> GridReading | None:  # type: ignore[override]
        await asyncio.sleep(0)
        return super()._grid_reading()


def upstream_site(backend: Csms, version: str, **upstream: Any) -> Any:
    return site(
        meter={"register_map": "socomec-countis-e27", "poll_interval_s": 0.05},
        ocpp_upstream={"url": f"ws://127.0.0.1:{backend.port}/ocpp", "charge_point_id": "site-1",
                       "version": version, "meter_interval_s": 0.05,
                       "reconnect_min_s": 0.05, "reconnect_max_s": 0.1, **upstream})


def grid_power_w(payload: dict[str, Any]) -> float:
    """The site's power in one upstream MeterValues (import positive)."""
    [value] = payload["meter_value"]
    for sampled in value["sampled_value"]:
        sign = {"Power.Active.Import": 1.0, "Power.Active.Export": -1.0}.get(sampled["measurand"])
        if sign is not None:
            return sign * float(sampled["value"])
    raise AssertionError(f"no power in {payload}")


async def next_meter(session: CsmsSession) -> dict[str, Any]:
    async with asyncio.timeout(10):
        return await session.meter_values.get()


@VERSIONS
@pytest.mark.parametrize("service_class", [Service, AsyncReaderService], ids=["sync", "async"])
async def test_upstream_meter_values_keep_one_websocket(
    backend: Csms, version: str, service_class: type[Service], tmp_path: Path
) -> None:
    """The grid meter goes upstream at every interval over one connection, booted once."""
    config = upstream_site(backend, version)
    service = service_class(config, tmp_path, simulate=True)
    await service.start()
    try:
        session = await backend.next_session()
        powers = [grid_power_w(await next_meter(session)) for _ in range(INTERVALS)]
        assert service._upstream is not None and service._upstream.boots == 1
        assert backend.sessions.empty()  # never a second connection
        assert all(p > 0 for p in powers)  # the household and the cars draw
    finally:
        await service.stop()


@VERSIONS
async def test_operator_profiles_survive_a_restart_without_a_setting(
    backend: Csms, version: str, tmp_path: Path
) -> None:
    """No ``profiles_path``: the profiles are kept under the state directory all the same."""
    v = BY_NAME[version]
    config = upstream_site(backend, version, failsafe_power_W=None)
    async with running(config, tmp_path) as service:
        session = await backend.next_session()
        result = await session.send(set_profile(v, 7, [(0, 20.0)], start=HOUR_AGO))
        assert result.status == "Accepted"
        await until(lambda: "ocpp" in service.manager.leases.leases)
    assert (tmp_path / "ocpp-profiles.json").exists()
    await backend.stop()  # the backend is gone: the restarted site still knows the profile
    async with running(config, tmp_path) as service:
        lease = await until(lambda: service.manager.leases.leases.get("ocpp"))
        [entry] = lease.limits.schedule_import[:1]
        assert entry.limits_to_root.ac_max_current_A == 20.0
    await backend.start()  # for the fixture's stop
