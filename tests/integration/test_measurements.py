"""Per-EVSE measurements through the whole service: a gRPC client reports them, the grid
meter (Modbus on 127.0.0.1) sees the cars on their real phases, and the manager follows.

The garage (rotation L2L3L1) has a car that charges on one phase, so it draws on grid L2
only; the carport's car draws on all three. The house has 35 A per phase with a household of
20 / 2 / 4 A. Configured as three-phase loads both EVSEs are budgeted on L1. Once the
garage's meter reports its one phase, the garage is budgeted on L2 alone: the carport gets
L1's 14 A, and the garage its own 16 A on L2 (2 + 14 + 16 ≤ 35 − 1).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.grpc import GrpcServer
from adapters.grpc.client import EnergyTreeClient
from adapters.meter.registermap import load_register_map
from adapters.meter.simulator import MeterSimulator, meter_values
from energytree.app.runtime import Service
from energytree.app.service import ServiceConfig
from energytree.types import PhaseValues, Powermeter
from tests.integration.test_runtime import Recorder, current_of, near, running, until

VOLT = 230.0
HOUSEHOLD = (20.0, 2.0, 4.0)


def config(meter_port: int) -> ServiceConfig:
    return ServiceConfig.model_validate({
        "name": "test home", "timezone": "Europe/Berlin", "nominal_voltage_V": VOLT,
        "tick_s": 0.05, "plan_budget_s": 1, "status_interval_s": 3600,
        "grid": {"uuid": "house", "max_current_A": 35, "children": [
            {"evse": "garage", "max_current_A": 16, "phase_rotation": "L2L3L1"},
            {"evse": "carport", "max_current_A": 16}]},
        "meter": {"register_map": "socomec-countis-e27", "host": "127.0.0.1",
                  "port": meter_port, "poll_interval_s": 0.05, "timeout_s": 0.5,
                  "margin_A": 1, "car_response_s": 0.3},
        "grpc": {"host": "127.0.0.1", "port": 0, "allow_unauthenticated": True},
    })


def grid_currents(service: Service | None) -> tuple[float, float, float]:
    """The household plus the cars, each drawing its grant on the phases it really uses."""
    granted = current_of(service) if service else {}
    garage, carport = granted.get("garage", 0.0), granted.get("carport", 0.0)
    return (HOUSEHOLD[0] + carport, HOUSEHOLD[1] + carport + garage, HOUSEHOLD[2] + carport)


async def report(client: EnergyTreeClient, service: Service) -> None:
    """The garage's own meter: its car on the EVSE's L1 (grid L2), every 50 ms."""
    while True:
        amps = current_of(service).get("garage", 0.0)
        await client.report_measurement("garage", Powermeter(
            current_A=PhaseValues(L1=amps, L2=0.0, L3=0.0),
            power_W=PhaseValues(total=amps * VOLT)))
        await asyncio.sleep(0.05)


async def test_a_one_phase_car_reported_over_grpc_is_budgeted_on_its_phase(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    holder: dict[str, Service] = {}
    simulator = MeterSimulator(load_register_map("socomec-countis-e27"),
                               lambda: meter_values(grid_currents(holder.get("service"))))
    servers = Recorder(GrpcServer)
    monkeypatch.setattr("energytree.app.plugs.grpcapi.GrpcServer", servers)
    port = await simulator.start()
    try:
        async with running(config(port), tmp_path) as service:
            holder["service"] = service
            await until(lambda: min(current_of(service).values(), default=0.0) >= 6.0)
            assert service.manager.status().evses[0].phases == 3  # configured: three
            [server] = servers.made
            async with EnergyTreeClient(f"127.0.0.1:{server.port}") as client:
                reporter = asyncio.create_task(report(client, service))
                try:
                    await until(lambda: near({"garage": 16.0, "carport": 14.0})(service))
                    status = {x.uuid: x for x in (await client.get_status()).evses}
                finally:
                    reporter.cancel()
            garage = status["garage"]
            assert (garage.phases, garage.drawn_phases) == (1, 1)
            assert garage.drawn_w is not None  # 7 A, or 16 A once the car followed
            assert 7.0 * VOLT - 1 <= garage.drawn_w <= 16.0 * VOLT + 1
            assert status["carport"].drawn_phases is None  # it reports nothing of its own
            assert service.manager.car_phases("garage") == (0,)
    finally:
        await simulator.stop()


async def test_a_bad_measurement_is_refused_and_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    servers = Recorder(GrpcServer)
    monkeypatch.setattr("energytree.app.plugs.grpcapi.GrpcServer", servers)
    cfg = config(1).model_copy(update={"meter": None})
    async with running(cfg, tmp_path) as service:
        [server] = servers.made
        async with EnergyTreeClient(f"127.0.0.1:{server.port}") as client:
            meter = Powermeter(current_A=PhaseValues(L1=10.0))
            with pytest.raises(Exception, match="no node with uuid 'nope'"):
                await client.report_measurement("nope", meter)
            assert service.manager.measurement("garage") is None
