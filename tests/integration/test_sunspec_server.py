"""The SunSpec server on 127.0.0.1 against real Modbus peers: pymodbus and pysunspec2."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import sunspec2.device
import sunspec2.modbus.client as sunspec_client
from pymodbus.client import AsyncModbusTcpClient

from adapters.sunspec import registers
from adapters.sunspec.registers import (
    FLAG_COUNT,
    GRID_POWER_ADDRESS,
    PERCENT_ADDRESS,
    MeterValues,
    Parameter,
    Parameters,
    SetFlag,
    SetParameter,
    SetPercent,
    SetVariable,
    SunSpecValues,
    Write,
    flag_address,
    variable_value_address,
)
from adapters.sunspec.server import SunSpecServer, SunSpecServerConfig
from energytree.errors import ConfigError, RequestError

UNIT = 3
ADAPTER_DIR = Path(registers.__file__).parent
FLOAT32 = AsyncModbusTcpClient.DATATYPE.FLOAT32


def to_registers(value: float) -> list[int]:
    return AsyncModbusTcpClient.convert_to_registers(value, FLOAT32, word_order="big")


def to_float(registers_: list[int]) -> float:
    value = AsyncModbusTcpClient.convert_from_registers(registers_, FLOAT32, word_order="big")
    assert isinstance(value, float)
    return value


@dataclass
class FakeSite:
    """The few lines of a site the server needs: values to publish, writes that apply."""

    values: SunSpecValues
    writes: list[Write] = field(default_factory=list)
    refuse: bool = False
    broken: bool = False

    def publish(self) -> SunSpecValues:
        if self.broken:
            raise ZeroDivisionError("a bug in the site")
        return self.values

    def apply(self, write: Write) -> None:
        if self.refuse:
            raise RequestError("the site refuses this write")
        self.writes.append(write)
        if isinstance(write, SetPercent):
            parameters = replace(self.values.parameters, max_total_current_percent=write.value)
            self.values = replace(self.values, parameters=parameters)
        elif isinstance(write, SetFlag):
            flags = list(self.values.flags)
            flags[write.number - 1] = write.value
            self.values = replace(self.values, flags=tuple(flags))
        elif isinstance(write, SetVariable):
            variables = tuple(
                (name, write.value if name == write.name else value)
                for name, value in self.values.variables
            )
            self.values = replace(self.values, variables=variables)


@pytest.fixture
def site() -> FakeSite:
    return FakeSite(
        SunSpecValues(
            grid=MeterValues(current_a=33.0, voltage_l1_v=230.0, power_w=4321.5),
            parameters=Parameters(max_total_current_ma=63000.0, max_total_current_percent=100.0),
            variables=(("AVAIL", 80.0),),
        )
    )


@pytest.fixture
async def server(site: FakeSite) -> AsyncIterator[SunSpecServer]:
    config = SunSpecServerConfig(port=0, unit_id=UNIT, serial="SN-42")
    sunspec = SunSpecServer(config, values_provider=site.publish, on_write=site.apply)
    await sunspec.start()
    yield sunspec
    await sunspec.stop()


@pytest.fixture
async def client(server: SunSpecServer) -> AsyncIterator[AsyncModbusTcpClient]:
    modbus = AsyncModbusTcpClient("127.0.0.1", port=server.port, timeout=5, retries=0)
    assert await modbus.connect()
    yield modbus
    modbus.close()


async def read_float(client: AsyncModbusTcpClient, address: int, fc: int = 3) -> float:
    read = client.read_holding_registers if fc == 3 else client.read_input_registers
    response = await read(address, count=2, device_id=UNIT)
    assert not response.isError(), response
    return to_float(response.registers)


async def read_all(client: AsyncModbusTcpClient) -> list[int]:
    """40000 … 41100 in chunks of 100 (a Modbus read carries at most 125)."""
    result: list[int] = []
    for address in range(40000, 41100, 100):
        response = await client.read_holding_registers(address, count=100, device_id=UNIT)
        assert not response.isError(), response
        result += response.registers
    return result


# --------------------------------------------------------------------------- pymodbus


@pytest.mark.parametrize("fc", [3, 4])
async def test_grid_power_at_40098_is_current(
    client: AsyncModbusTcpClient, site: FakeSite, fc: int
) -> None:
    assert await read_float(client, GRID_POWER_ADDRESS, fc) == 4321.5
    site.values = replace(site.values, grid=MeterValues(power_w=-1500.25))
    assert await read_float(client, GRID_POWER_ADDRESS, fc) == -1500.25


async def test_percent_write_reaches_the_site_and_reads_back(
    client: AsyncModbusTcpClient, site: FakeSite
) -> None:
    response = await client.write_registers(PERCENT_ADDRESS, to_registers(40.0), device_id=UNIT)
    assert not response.isError(), response
    assert site.writes == [SetPercent(40.0)]
    assert await read_float(client, PERCENT_ADDRESS, fc=3) == 40.0
    assert await read_float(client, PERCENT_ADDRESS, fc=4) == 40.0


@pytest.mark.parametrize(
    ("address", "registers_", "code"),
    [
        pytest.param(PERCENT_ADDRESS, to_registers(math.nan), 3, id="percent-nan"),
        pytest.param(PERCENT_ADDRESS, to_registers(150.0), 3, id="percent-150"),
        pytest.param(PERCENT_ADDRESS, to_registers(-1.0), 3, id="percent-minus-1"),
        pytest.param(GRID_POWER_ADDRESS, to_registers(1.0), 2, id="grid-power-read-only"),
        pytest.param(40954, to_registers(16000.0), 2, id="max-current-not-enabled"),
        pytest.param(PERCENT_ADDRESS - 1, [0, 0x4220], 2, id="straddles-two-points"),
        pytest.param(flag_address(1), [1, 1], 2, id="two-flags"),
    ],
)
async def test_bad_fc16_writes_get_their_exception_and_change_nothing(
    client: AsyncModbusTcpClient, site: FakeSite, address: int, registers_: list[int], code: int
) -> None:
    before = await read_all(client)
    response = await client.write_registers(address, registers_, device_id=UNIT)
    assert response.isError()
    assert response.exception_code == code
    assert site.writes == []
    assert await read_all(client) == before


@pytest.mark.parametrize("address", [PERCENT_ADDRESS, PERCENT_ADDRESS + 1, GRID_POWER_ADDRESS])
async def test_fc6_to_half_a_float_is_rejected(
    client: AsyncModbusTcpClient, site: FakeSite, address: int
) -> None:
    before = await read_all(client)
    response = await client.write_register(address, 0x4220, device_id=UNIT)
    assert response.isError()
    assert response.exception_code == 2
    assert site.writes == []
    assert await read_all(client) == before


async def test_flags_by_fc6(client: AsyncModbusTcpClient, site: FakeSite) -> None:
    response = await client.write_register(flag_address(3), 1, device_id=UNIT)
    assert not response.isError(), response
    assert site.writes == [SetFlag(3, True)]
    flags = await client.read_holding_registers(flag_address(1), count=FLAG_COUNT, device_id=UNIT)
    assert flags.registers == [0, 0, 1] + [0] * 29

    response = await client.write_register(flag_address(3), 2, device_id=UNIT)
    assert response.isError()
    assert response.exception_code == 3
    assert site.writes == [SetFlag(3, True)]


async def test_variable_value_by_fc16(client: AsyncModbusTcpClient, site: FakeSite) -> None:
    address = variable_value_address(0)
    response = await client.write_registers(address, to_registers(55.0), device_id=UNIT)
    assert not response.isError(), response
    assert site.writes == [SetVariable("AVAIL", 55.0)]
    assert await read_float(client, address) == 55.0


async def test_a_write_the_site_refuses_is_exception_3_and_changes_nothing(
    client: AsyncModbusTcpClient, site: FakeSite
) -> None:
    site.refuse = True
    response = await client.write_registers(PERCENT_ADDRESS, to_registers(40.0), device_id=UNIT)
    assert response.isError()
    assert response.exception_code == 3
    assert await read_float(client, PERCENT_ADDRESS) == 100.0


async def test_async_on_write_is_awaited(site: FakeSite) -> None:
    seen: list[Write] = []

    async def on_write(write: Write) -> None:
        await asyncio.sleep(0)
        seen.append(write)

    sunspec = SunSpecServer(SunSpecServerConfig(port=0), site.publish, on_write)
    port = await sunspec.start()
    modbus = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
    try:
        assert await modbus.connect()
        response = await modbus.write_registers(PERCENT_ADDRESS, to_registers(12.5), device_id=1)
        assert not response.isError(), response
        assert seen == [SetPercent(12.5)]
    finally:
        modbus.close()
        await sunspec.stop()


async def test_a_failing_site_is_device_failure_not_stale_data(
    client: AsyncModbusTcpClient, site: FakeSite
) -> None:
    site.broken = True
    response = await client.read_holding_registers(GRID_POWER_ADDRESS, count=2, device_id=UNIT)
    assert response.isError()
    assert response.exception_code == 4


async def test_coil_functions_are_illegal(client: AsyncModbusTcpClient, site: FakeSite) -> None:
    response = await client.write_coil(flag_address(1), True, device_id=UNIT)
    assert response.isError()
    assert response.exception_code == 1
    assert site.writes == []


@pytest.mark.parametrize("unit", [0, 1, UNIT + 1, 255])
async def test_other_unit_ids_get_no_data(client: AsyncModbusTcpClient, unit: int) -> None:
    response = await client.read_holding_registers(GRID_POWER_ADDRESS, count=2, device_id=unit)
    assert response.isError()
    assert response.exception_code == 2
    response = await client.write_registers(PERCENT_ADDRESS, to_registers(1.0), device_id=unit)
    assert response.exception_code == 2


async def test_start_and_stop(site: FakeSite) -> None:
    sunspec = SunSpecServer(SunSpecServerConfig(port=0), site.publish, site.apply)
    port = await sunspec.start()
    assert port == sunspec.port > 0
    with pytest.raises(RuntimeError):
        await sunspec.start()
    await sunspec.stop()
    await sunspec.stop()
    with pytest.raises(RuntimeError):
        _ = sunspec.port


async def test_a_busy_port_is_a_config_error(server: SunSpecServer, site: FakeSite) -> None:
    second = SunSpecServer(SunSpecServerConfig(port=server.port), site.publish, site.apply)
    with pytest.raises(ConfigError, match=str(server.port)):
        await second.start()


async def test_an_enabled_parameter_is_handed_to_the_site(site: FakeSite) -> None:
    config = SunSpecServerConfig(port=0, writable_parameters=["max_total_current_ma"])
    assert config.writable_parameters == {Parameter.MAX_TOTAL_CURRENT_MA}
    sunspec = SunSpecServer(config, site.publish, site.apply)
    modbus = AsyncModbusTcpClient("127.0.0.1", port=await sunspec.start(), timeout=5, retries=0)
    try:
        assert await modbus.connect()
        response = await modbus.write_registers(40954, to_registers(32000.0), device_id=1)
        assert not response.isError(), response
        response = await modbus.write_registers(40956, to_registers(2000.0), device_id=1)
        assert response.exception_code == 2
        assert site.writes == [SetParameter(Parameter.MAX_TOTAL_CURRENT_MA, 32000.0)]
    finally:
        modbus.close()
        await sunspec.stop()


@pytest.mark.parametrize(
    "bad",
    [{"unit_id": 0}, {"port": 70000}, {"manufacturer": "x" * 33}, {"serial": "ä"}, {"extra": 1}],
)
def test_config_rejects(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SunSpecServerConfig(**bad)


def test_config_has_a_json_schema() -> None:
    schema = SunSpecServerConfig.model_json_schema()
    assert schema["properties"]["port"]["default"] == 1502


# --------------------------------------------------------------------------- pysunspec2


@pytest.fixture
def model_defs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[str]]:
    """pysunspec2 looks for model files in the cwd first: keep stray ones out of the way."""
    monkeypatch.chdir(tmp_path)
    bundled = [str(Path(sunspec2.device.models_dir))]
    monkeypatch.setattr(sunspec2.device, "model_defs_path", bundled)
    sunspec2.device.clear_model_defs_cache()
    yield bundled
    sunspec2.device.clear_model_defs_cache()


def scan(port: int) -> dict[str, Any]:
    """Blocking: what a SunSpec master finds (run in a thread)."""
    device = sunspec_client.SunSpecModbusClientDeviceTCP(
        slave_id=UNIT, ipaddr="127.0.0.1", ipport=port, timeout=5
    )
    try:
        device.scan()
        grid = device.ac_meter_abcn_float[0]
        return {
            "base": device.base_addr,
            "chain": [(m.model_id, m.model_addr, m.model_len) for m in device.model_list],
            "ids": [key for key in device.models if isinstance(key, int)],
            "W": grid.W.value,
            "W_address": grid.model_addr + grid.W.offset,
            "VA": grid.VA.value,
            "serial": device.common[0].SN.value,
        }
    finally:
        device.close()


async def test_pysunspec2_scans_the_cfos_chain(
    server: SunSpecServer, model_defs: list[str]
) -> None:
    found = await asyncio.to_thread(scan, server.port)
    meters = (40070, 40196, 40322, 40448, 40574, 40700, 40826)
    assert found["base"] == 40000
    assert found["chain"] == [(1, 40002, 66)] + [(213, address, 124) for address in meters]
    assert found["ids"] == [1, 213, 60000, 60001, 60002]
    assert (found["W"], found["W_address"], found["VA"]) == (4321.5, 40098, None)
    assert found["serial"] == "SN-42"


def percent_by_name(port: int, new_value: float) -> tuple[float, float, int, str]:
    """Blocking: read MaxTotPct, write it, read back; then try an illegal value."""
    device = sunspec_client.SunSpecModbusClientDeviceTCP(
        slave_id=UNIT, ipaddr="127.0.0.1", ipport=port, timeout=5
    )
    try:
        device.scan()
        params = device.cm_params[0]
        before = params.MaxTotPct.value
        params.MaxTotPct.value = new_value
        params.MaxTotPct.write()
        params.read()
        after = params.MaxTotPct.value
        params.MaxTotPct.value = 150.0
        try:
            params.MaxTotPct.write()
            error = ""
        except Exception as exc:  # pysunspec2 raises its own Modbus exception type
            error = str(exc)
        params.read()
        return before, after, params.MaxTotPct.offset + params.model_addr, error or "accepted"
    finally:
        device.close()


async def test_pysunspec2_reads_and_writes_the_percent_by_name(
    server: SunSpecServer, site: FakeSite, model_defs: list[str]
) -> None:
    model_defs.insert(0, str(ADAPTER_DIR))  # our model_60000.json
    before, after, address, error = await asyncio.to_thread(percent_by_name, server.port, 40.0)
    assert (before, after, address) == (100.0, 40.0, 40968)
    assert site.writes == [SetPercent(40.0)]
    assert error == "Modbus exception: 3"
    assert site.values.parameters.max_total_current_percent == 40.0


def test_model_60000_json_describes_the_registers_we_serve() -> None:
    definition = sunspec2.device.mdef.from_json_file(str(ADAPTER_DIR / "model_60000.json"))
    assert sunspec2.device.mdef.validate_model_def(definition) == ""
    points = definition["group"]["points"]
    offsets, offset = {}, 0
    for point in points:
        offsets[point["name"]] = offset
        offset += point["size"]
    assert offset - 2 == 16  # L
    assert 40952 + offsets["MaxTotPct"] == PERCENT_ADDRESS
