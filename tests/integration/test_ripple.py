"""Ripple-control receiver against a real pymodbus server on 127.0.0.1 whose coils the test sets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from adapters.ripple import (
    Contact,
    Level,
    RippleConfig,
    RippleLevel,
    RippleLevels,
    RippleReceiver,
    level_for,
)

UNIT = 3
K1_COIL, K2_COIL = 4, 5
DISCRETE = [False, True] + [False] * 14  # discrete input 1 is closed, fixed by the "hardware"


class ContactBox:
    """A Modbus I/O box with coils and discrete inputs; start() again reuses its port."""

    def __init__(self) -> None:
        self.port = 0
        self._server: ModbusTcpServer | None = None

    async def start(self) -> int:
        device = SimDevice(id=UNIT, simdata=(
            [SimData(0, values=[False] * 16, datatype=DataType.BITS)],
            [SimData(0, values=DISCRETE, datatype=DataType.BITS)],
            [SimData(0, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, values=0, datatype=DataType.REGISTERS)],
        ))
        self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self._server.serve_forever(background=True)
        self.port = self._server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    async def set_contacts(self, k1: bool, k2: bool) -> None:
        """What the grid operator's relay does: close or open the two contacts."""
        client = AsyncModbusTcpClient("127.0.0.1", port=self.port)
        await client.connect()
        try:
            for address, state in ((K1_COIL, k1), (K2_COIL, k2)):
                response = await client.write_coil(address, state, device_id=UNIT)
                assert not response.isError()
        finally:
            client.close()


@pytest.fixture
async def box() -> AsyncIterator[ContactBox]:
    contact_box = ContactBox()
    await contact_box.start()
    yield contact_box
    await contact_box.stop()


def config_for(box: ContactBox, **kwargs: object) -> RippleConfig:
    return RippleConfig.model_validate({
        "name": "RSE-1", "port": box.port, "unit": UNIT, "timeout_s": 0.5, "poll_interval_s": 0.05,
        "input1": {"address": K1_COIL, "kind": "coil"},
        "input2": {"address": K2_COIL, "kind": "coil"},
        "levels": {"open_open": {"percent": 100}, "k1": {"percent": 60}, "k2": {"percent": 30},
                   "both": {"power_W": 4200}},
        "failsafe": {"power_W": 4200},
        **kwargs,
    })


# --- pure mapping -------------------------------------------------------------------------

CONFIG = RippleConfig(input1=Contact(address=0), input2=Contact(address=1))


@pytest.mark.parametrize(
    ("inputs", "source", "limit_w"),
    [
        pytest.param((False, False), "open_open", 30_000.0, id="both-open"),
        pytest.param((True, False), "k1", 18_000.0, id="k1"),
        pytest.param((False, True), "k2", 9_000.0, id="k2"),
        pytest.param((True, True), "both", 4_200.0, id="both-closed-14a-minimum"),
        pytest.param(None, "failsafe", 4_200.0, id="unreadable"),
    ],
)
def test_contact_patterns_map_to_levels(inputs: tuple[bool, bool] | None, source: str,
                                        limit_w: float) -> None:
    level = level_for(inputs, CONFIG)
    assert level.source == source
    assert level.limit_w(30_000.0) == pytest.approx(limit_w)


def test_a_level_is_percent_or_power_not_both() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        Level(percent=50, power_W=1000)
    with pytest.raises(ValidationError, match="exactly one"):
        Level()
    assert RippleLevels.model_validate({"k1": {"power_W": 11000}}).k1.power_w == 11000


# --- against a real Modbus server ---------------------------------------------------------


async def test_contacts_select_levels_and_report_changes(box: ContactBox) -> None:
    changes: list[tuple[RippleLevel, tuple[bool, bool] | None]] = []
    receiver = RippleReceiver(config_for(box), on_change=lambda *change: changes.append(change))
    assert receiver.level.source == "failsafe"  # nothing read yet
    try:
        for k1, k2, source in [(False, False, "open_open"), (True, False, "k1"),
                               (False, True, "k2"), (True, True, "both")]:
            await box.set_contacts(k1, k2)
            level = await receiver.poll_once()
            assert level.source == source
            assert receiver.inputs == (k1, k2)
        assert receiver.formula_inputs == {"PB.input1": 1.0, "PB.input2": 1.0}
        await receiver.poll_once()  # nothing changed: no callback
        assert [level.source for level, _ in changes] == ["open_open", "k1", "k2", "both"]
        assert changes[1] == (RippleLevel("k1", 60.0, None), (True, False))
    finally:
        await receiver.stop()


async def test_discrete_inputs_are_read_too(box: ContactBox) -> None:
    config = config_for(box, input1={"address": 0, "kind": "discrete_input"},
                        input2={"address": 1, "kind": "discrete_input"})
    receiver = RippleReceiver(config)
    try:
        assert (await receiver.poll_once()).source == "k2"
    finally:
        await receiver.stop()


async def test_failsafe_while_unreadable_and_recovery(
    box: ContactBox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="adapters.ripple")
    changes: list[tuple[RippleLevel, tuple[bool, bool] | None]] = []
    receiver = RippleReceiver(config_for(box), on_change=lambda *change: changes.append(change))
    try:
        await box.set_contacts(True, False)
        assert (await receiver.poll_once()).source == "k1"

        await box.stop()
        for _ in range(3):
            assert (await receiver.poll_once()).source == "failsafe"
        assert receiver.inputs is None
        assert receiver.formula_inputs == {"PB.input1": None, "PB.input2": None}
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                    and r.name == "adapters.ripple"]
        assert len(warnings) == 1
        assert warnings[0].startswith(
            f"Ripple-control receiver 'RSE-1' (127.0.0.1:{box.port} unit {UNIT}): read failed")

        await box.start()  # same port, coils back to open
        assert (await receiver.poll_once()).source == "open_open"
        assert "contacts readable again" in caplog.records[-1].getMessage()
        assert [level.source for level, _ in changes] == ["k1", "failsafe", "open_open"]
        assert changes[1][1] is None
    finally:
        await receiver.stop()


async def test_background_polling_follows_the_contacts(box: ContactBox) -> None:
    seen: asyncio.Queue[str] = asyncio.Queue()
    receiver = RippleReceiver(config_for(box),
                              on_change=lambda level, _inputs: seen.put_nowait(level.source))
    before = asyncio.all_tasks()
    await receiver.start()
    try:
        assert await asyncio.wait_for(seen.get(), timeout=5) == "open_open"
        await box.set_contacts(False, True)
        assert await asyncio.wait_for(seen.get(), timeout=5) == "k2"
    finally:
        await receiver.stop()
    assert asyncio.all_tasks() <= before
