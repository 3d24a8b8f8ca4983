"""``serve --simulate`` end to end: the real ``Service`` with simulated cars and a simulated
Modbus grid meter on 127.0.0.1, read by the service's own meter client.

The grid meter's phase currents, as the service reads them, stay within the connection while
a 1-phase car on a rotated 3-phase EVSE and a 3-phase car share it with the household; the
1-phase car shows up on the grid phase its rotation names. A restart keeps the meter's and
the EVSEs' energy registers.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from adapters.meter.registermap import load_register_map
from adapters.meter.simulator import MeterSimulator, meter_values
from energytree.app.runtime import Service
from energytree.app.service import ServiceConfig

CONNECTION_A = 20.0
MARGIN_A = 1.0


def simulated_site(grid_meter: str = "simulated") -> ServiceConfig:
    return ServiceConfig.model_validate({
        "name": "simulated home", "timezone": "Europe/Berlin", "nominal_voltage_V": 230,
        "tick_s": 0.1, "plan_budget_s": 1, "status_interval_s": 3600,
        "grid": {"uuid": "house", "max_current_A": CONNECTION_A, "children": [
            {"evse": "garage", "max_current_A": 16},
            {"evse": "carport", "max_current_A": 16, "phase_rotation": "L2L3L1"}]},
        "meter": {"register_map": "eastron-sdm630", "host": "127.0.0.1", "port": 1,
                  "poll_interval_s": 0.1, "safe_current_A": 6, "margin_A": MARGIN_A},
        "simulation": {"grid_meter": grid_meter, "household_scale": 0.5, "cars": {
            "garage": {"phases": 3, "max_current_A": 16, "lag_s": 0.3},
            "carport": {"phases": 1, "max_current_A": 16, "lag_s": 0.3}}},
    })


async def watch_meter(service: Service, seconds: float) -> list[tuple[float, float, float]]:
    """The grid meter's phase currents as the service reads them, sampled for ``seconds``
    once both cars draw (the loop needs a few ticks to learn the 1-phase car)."""
    garage, carport = service.simulated["garage"], service.simulated["carport"]
    seen: list[tuple[float, float, float]] = []
    async with asyncio.timeout(60):
        while not (garage.current_a > 0 and carport.current_a > 0) or len(seen) < 2:
            current = service.facts().meter_current_a
            if current is not None:
                seen.append(current)
            await asyncio.sleep(0.05)
        end = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < end:
            current = service.facts().meter_current_a
            if current is not None:
                seen.append(current)
            await asyncio.sleep(0.05)
    return seen


async def test_serve_simulate_keeps_the_measured_phases_within_the_connection(
        tmp_path: Path) -> None:
    service = Service(simulated_site(), tmp_path, simulate=True)
    await service.start()
    try:
        readings = await watch_meter(service, 2.0)
        garage, carport = service.simulated["garage"], service.simulated["carport"]
        assert carport.phases_used == 1 and garage.current_a > 0
        registers = (service.facts().meter_import_wh, carport.import_wh)
    finally:
        await service.stop()
    assert all(max(phases) <= CONNECTION_A for phases in readings), readings
    l1, l2, _l3 = readings[-1]  # the 1-phase car draws on L2 (rotation L2L3L1), not on L1;
    assert l2 - l1 > carport.current_a - 2.0  # the halved household differs by < 2 A
    assert registers[0] is not None and registers[0] > 0 and registers[1] > 0

    again = Service(simulated_site(), tmp_path, simulate=True)
    await again.start()
    try:
        await watch_meter(again, 0.0)
        meter_wh = again.facts().meter_import_wh
        assert meter_wh is not None and meter_wh >= registers[0]  # not back to 0
        assert again.simulated["carport"].import_wh >= registers[1]
    finally:
        await again.stop()


async def test_serve_simulate_says_it_replaces_the_meter(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="energytree.app.plugs.meter")
    service = Service(simulated_site(), tmp_path, simulate=True)
    await service.start()
    await service.stop()
    assert "--simulate replaces the grid meter at 127.0.0.1" in caplog.text


async def test_serve_simulate_can_drive_simulated_cars_against_an_external_meter(
        tmp_path: Path) -> None:
    """The meter section's meter (here a Modbus server on 127.0.0.1 standing in for the real
    one) is read as it is; only the cars are simulated."""
    external = MeterSimulator(load_register_map("eastron-sdm630"),
                              lambda: meter_values((3.0, 4.0, 5.0)))
    port = await external.start()
    config = simulated_site("external")
    assert config.meter is not None
    config = config.model_copy(update={"meter": config.meter.model_copy(update={"port": port})})
    service = Service(config, tmp_path, simulate=True)
    await service.start()
    try:
        async with asyncio.timeout(30):
            while service.facts().meter_current_a is None:
                await asyncio.sleep(0.05)
        assert service.facts().meter_current_a == pytest.approx((3.0, 4.0, 5.0))
        async with asyncio.timeout(30):
            while service.simulated["garage"].current_a == 0:
                await asyncio.sleep(0.05)
    finally:
        await service.stop()
        await external.stop()


async def test_serve_simulate_serves_one_of_two_cars_that_need_more_than_a_shared_fuse_gives(
        tmp_path: Path) -> None:
    """Two cars that need 8 A behind a 12 A fuse: shared equally (6 A each) both pause and
    nothing flows. Through ``serve --simulate``, once they have paused, one car draws."""
    config = ServiceConfig.model_validate({
        "name": "two picky cars", "tick_s": 0.1, "plan_budget_s": 1, "status_interval_s": 3600,
        "grid": {"uuid": "house", "max_current_A": 35, "children": [
            {"fuse": "carports", "max_current_A": 12, "children": [
                {"evse": "left", "max_current_A": 16},
                {"evse": "right", "max_current_A": 16}]}]},
        "simulation": {"cars": {
            uuid: {"phases": 3, "max_current_A": 16, "min_current_A": 8, "lag_s": 0.2}
            for uuid in ("left", "right")}},
    })
    service = Service(config, tmp_path, simulate=True)
    await service.start()
    try:
        cars = service.simulated
        async with asyncio.timeout(60):
            while not any(sim.current_a >= 8.0 for sim in cars.values()):
                await asyncio.sleep(0.05)
        drawing = sorted(sim.current_a for sim in cars.values())
    finally:
        await service.stop()
    assert drawing[0] == 0.0 and 8.0 <= drawing[1] <= 12.0


async def test_serve_simulate_shares_the_meter_budget_when_it_leaves_a_planned_car_out(
        tmp_path: Path) -> None:
    """Three cars on a 20 A connection: the plan shares it at 6.67 A each, but the grid meter
    leaves 17.5 A after a 2.5 A margin, less than three 6 A minimums. Through ``serve
    --simulate`` two cars charge, and they share the 17.5 A instead of keeping the 6.67 A
    the plan meant for them when it counted on the third."""
    config = ServiceConfig.model_validate({
        "name": "three on twenty", "tick_s": 0.1, "plan_budget_s": 1, "status_interval_s": 3600,
        "grid": {"uuid": "house", "max_current_A": 20, "children": [
            {"evse": uuid, "max_current_A": 16} for uuid in ("a", "b", "c")]},
        "meter": {"register_map": "eastron-sdm630", "host": "127.0.0.1", "port": 1,
                  "poll_interval_s": 0.1, "safe_current_A": 6, "margin_A": 2.5},
        "simulation": {"household_scale": 0.0, "cars": {
            uuid: {"phases": 3, "max_current_A": 16, "lag_s": 0.2} for uuid in ("a", "b", "c")}},
    })
    service = Service(config, tmp_path, simulate=True)
    await service.start()
    try:
        cars = service.simulated
        async with asyncio.timeout(45):
            while sorted(car.current_a for car in cars.values())[1] < 8.0:
                await asyncio.sleep(0.05)
        draws = sorted(car.current_a for car in cars.values())
        meter = service.facts().meter_current_a
    finally:
        await service.stop()
    assert draws[0] == 0.0 and draws[1] >= 8.0 and draws[1] + draws[2] <= 17.5 + 0.05
    assert meter is not None and max(meter) <= 20.0
