"""Grid-meter client against a real pymodbus server (the simulator) on 127.0.0.1.

The timeline is Alfen's §4.1: meter lost → WARNING at once (safe current), 2 minutes without
valid data → ERROR logged once, meter back → NORMAL and "connected via host:port again",
a warning with the count of failed polls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import pytest

from adapters.meter.client import GridMeterClient, GridMeterConfig, MeterState, next_state
from adapters.meter.registermap import MeterReading, Quantity, load_register_map
from adapters.meter.simulator import Fault, MeterSimulator, meter_values
from energytree.app.simulation import household_load_profile

CLIENT_LOG = "adapters.meter.client"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Site:
    """What the simulated meter measures; tests change it between polls."""

    def __init__(self) -> None:
        self.current_a = (10.0, 8.0, 6.0)
        self.voltage_v = 230.0

    def values(self) -> dict[str, float]:
        return meter_values(self.current_a, voltage_v=self.voltage_v)


@pytest.fixture
def site() -> Site:
    return Site()


@pytest.fixture
async def socomec(site: Site) -> AsyncIterator[MeterSimulator]:
    sim = MeterSimulator(load_register_map("socomec-countis-e27"), site.values)
    await sim.start()
    yield sim
    await sim.stop()


def make_client(
    sim: MeterSimulator,
    clock: FakeClock,
    map_name: str = "socomec-countis-e27",
    on_reading: Callable[[MeterReading], None] | None = None,
    **config: object,
) -> GridMeterClient:
    settings = GridMeterConfig.model_validate(
        {"register_map": map_name, "port": sim.port, "timeout_s": 0.5, "poll_interval_s": 0.05,
         **config})
    return GridMeterClient(settings, clock=clock, on_reading=on_reading)


def client_messages(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == CLIENT_LOG]


async def test_alfen_timeline_warning_error_recovery(
    socomec: MeterSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=CLIENT_LOG)
    clock, states = FakeClock(), []
    client = GridMeterClient(
        GridMeterConfig(register_map="socomec-countis-e27", port=socomec.port, timeout_s=0.5),
        clock=clock, on_state=states.append)
    where = f"127.0.0.1:{socomec.port}"
    assert client.state is MeterState.INITIALIZING and client.needs_safe_current
    try:
        reading = await client.poll_once()
        assert reading is not None and reading.current_a == pytest.approx((10.0, 8.0, 6.0))
        assert client.state is MeterState.NORMAL and not client.needs_safe_current

        await socomec.stop()
        assert await client.poll_once() is None
        assert client.state is MeterState.WARNING and client.needs_safe_current
        warning = client_messages(caplog)[-1]
        assert warning[0] == logging.WARNING
        assert warning[1].startswith(f"Communication warning for modbus unit 5 ({where}): ")

        clock.now += 60
        await client.poll_once()
        assert client.state is MeterState.WARNING

        clock.now += 60  # 120 s without a valid reading
        await client.poll_once()
        assert client.state is MeterState.ERROR
        clock.now += 31
        await client.poll_once()
        errors = [m for level, m in client_messages(caplog) if level == logging.ERROR]
        assert len(errors) == 1  # logged once, however long the outage lasts
        assert errors[0].startswith(f"Communication error for modbus unit 5 ({where}): ")

        await socomec.start()
        clock.now += 31
        assert await client.poll_once() is not None
        assert client.state is MeterState.NORMAL
        assert client_messages(caplog)[-1] == (
            logging.WARNING, f"TCP MODBUS unit 5 connected via {where} again: recovered after "
            "4 failed polls in 182 s")
        assert states == [MeterState.NORMAL, MeterState.WARNING, MeterState.ERROR,
                          MeterState.NORMAL]
    finally:
        await client.stop()


async def test_each_state_is_logged_once(
    socomec: MeterSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=CLIENT_LOG)
    clock = FakeClock()
    client = make_client(socomec, clock)
    try:
        await client.poll_once()
        socomec.fault = Fault.EXCEPTION
        for _ in range(5):
            await client.poll_once()
            clock.now += 1
        levels = [level for level, _ in client_messages(caplog)]
        assert levels == [logging.INFO, logging.WARNING]
    finally:
        await client.stop()


async def test_nan_values_trip_warning_and_keep_the_last_reading(
    socomec: MeterSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=CLIENT_LOG)
    client = make_client(socomec, FakeClock())
    try:
        good = await client.poll_once()
        socomec.fault = Fault.NAN
        assert await client.poll_once() is None
        assert client.state is MeterState.WARNING
        assert "implausible" in client_messages(caplog)[-1][1]
        assert client.last_reading == good

        socomec.fault = Fault.NONE  # the connection stayed up: recovery needs no reconnect
        assert await client.poll_once() is not None
        assert client.state is MeterState.NORMAL
    finally:
        await client.stop()


async def test_all_zero_voltages_are_implausible(socomec: MeterSimulator, site: Site) -> None:
    client = make_client(socomec, FakeClock())
    try:
        await client.poll_once()
        site.voltage_v = 0.0
        await client.poll_once()
        assert client.state is MeterState.WARNING
        assert client.last_error == "implausible voltages: all phases read 0 V"
    finally:
        await client.stop()


async def test_exception_answers_and_silence_trip_warning(socomec: MeterSimulator) -> None:
    clock = FakeClock()
    client = make_client(socomec, clock)
    try:
        await client.poll_once()
        socomec.fault = Fault.EXCEPTION
        await client.poll_once()
        assert client.state is MeterState.WARNING
        assert "modbus exception 4" in (client.last_error or "")

        socomec.fault = Fault.SILENT
        await client.poll_once()  # times out after timeout_s
        assert client.state is MeterState.WARNING

        socomec.fault = Fault.NONE
        clock.now += 31
        assert await client.poll_once() is not None
    finally:
        await client.stop()


async def test_no_meter_at_start_warns_then_errors(socomec: MeterSimulator) -> None:
    clock = FakeClock()
    await socomec.stop()
    client = make_client(socomec, clock)
    try:
        await client.poll_once()
        assert client.state is MeterState.WARNING
        clock.now += 120
        await client.poll_once()
        assert client.state is MeterState.ERROR
    finally:
        await client.stop()


async def test_reconnect_waits_for_back_off(socomec: MeterSimulator) -> None:
    clock = FakeClock()
    client = make_client(socomec, clock)
    try:
        await client.poll_once()
        await socomec.stop()
        await client.poll_once()
        await socomec.start()
        await client.poll_once()  # the same instant: still backing off
        assert client.state is MeterState.WARNING
        assert (client.last_error or "").startswith("not connected; next attempt in")
        clock.now += 1
        assert await client.poll_once() is not None
    finally:
        await client.stop()


async def test_invert_flips_the_power_sign(socomec: MeterSimulator) -> None:
    client = make_client(socomec, FakeClock(), invert=True)
    try:
        reading = await client.poll_once()
        assert reading is not None and reading.power_w == pytest.approx(-230.0 * 24)
    finally:
        await client.stop()


@pytest.mark.parametrize("model", [213, 203])
async def test_sunspec_meter_is_found_by_scanning(model: int, site: Site) -> None:
    rmap = load_register_map("sunspec").model_copy(update={"sunspec": (model,)})
    sim = MeterSimulator(rmap, site.values)
    await sim.start()
    client = GridMeterClient(GridMeterConfig(register_map="sunspec", port=sim.port, timeout_s=0.5),
                             load_register_map("sunspec"), clock=FakeClock())
    try:
        reading = await client.poll_once()
        assert client.state is MeterState.NORMAL, client.last_error
        assert reading is not None
        assert reading.current_a == pytest.approx((10.0, 8.0, 6.0), abs=0.01)
        assert reading.power_w == pytest.approx(230.0 * 24, abs=10)
        assert reading.voltage_v == pytest.approx((230.0, 230.0, 230.0), abs=0.1)
        if model == 213:  # the grid meter's W sits where cFos and every SunSpec master expect it
            assert client.register_map is not None
            assert client.register_map.values[Quantity.POWER].address == 40098
    finally:
        await client.stop()
        await sim.stop()


@pytest.mark.parametrize("name", ["socomec-countis-e27", "eastron-sdm630", "carlogavazzi-em24"])
async def test_every_shipped_map_reads_back_what_the_simulator_serves(name: str,
                                                                      site: Site) -> None:
    sim = MeterSimulator(load_register_map(name), site.values)
    await sim.start()
    client = make_client(sim, FakeClock(), map_name=name)
    try:
        reading = await client.poll_once()
        assert reading is not None, client.last_error
        assert reading.current_a == pytest.approx(site.current_a, abs=0.01)
        assert reading.power_w == pytest.approx(230.0 * 24, abs=10)
    finally:
        await client.stop()
        await sim.stop()


async def test_start_polls_in_the_background_and_stop_cleans_up(socomec: MeterSimulator) -> None:
    got: asyncio.Queue[MeterReading] = asyncio.Queue()
    client = make_client(socomec, FakeClock(), on_reading=got.put_nowait)
    before = asyncio.all_tasks()
    await client.start()
    first = await asyncio.wait_for(got.get(), timeout=5)
    second = await asyncio.wait_for(got.get(), timeout=5)
    assert first.current_a == second.current_a == pytest.approx((10.0, 8.0, 6.0))
    await client.stop()
    await client.stop()  # twice is harmless
    assert asyncio.all_tasks() <= before


def test_state_machine_transitions() -> None:
    assert next_state(MeterState.INITIALIZING, ok=True, silent_s=0, error_after_s=120) \
        is MeterState.NORMAL
    assert next_state(MeterState.NORMAL, ok=False, silent_s=1, error_after_s=120) \
        is MeterState.WARNING
    assert next_state(MeterState.WARNING, ok=False, silent_s=119.9, error_after_s=120) \
        is MeterState.WARNING
    assert next_state(MeterState.WARNING, ok=False, silent_s=120, error_after_s=120) \
        is MeterState.ERROR
    assert next_state(MeterState.ERROR, ok=False, silent_s=0, error_after_s=120) \
        is MeterState.ERROR
    assert next_state(MeterState.ERROR, ok=True, silent_s=500, error_after_s=120) \
        is MeterState.NORMAL


def test_household_profile_peaks_at_dinner_and_is_uneven() -> None:
    night = household_load_profile(datetime(2026, 1, 5, 3, 0))
    dinner = household_load_profile(datetime(2026, 1, 5, 18, 0))
    assert sum(dinner) > 4 * sum(night)
    assert dinner[0] > dinner[2] and night[0] > night[1] > night[2]
    assert all(0 < amps < 32 for amps in dinner)


async def test_a_device_without_sunspec_marker_is_reported(socomec: MeterSimulator) -> None:
    client = make_client(socomec, FakeClock(), map_name="sunspec", unit=5)
    try:
        assert await client.poll_once() is None
        assert client.last_error == "no SunSpec marker at 40000, 0, 50000"
    finally:
        await client.stop()


async def test_a_crashing_callback_is_logged_not_swallowed(
    socomec: MeterSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(reading: MeterReading) -> None:
        raise RuntimeError("bug in the caller")

    client = make_client(socomec, FakeClock(), on_reading=broken)
    await client.start()
    for _ in range(100):
        if any("stopped by an error" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.01)
    assert any("stopped by an error" in r.getMessage() for r in caplog.records)
    await client.stop()
