"""A simulated grid meter served over Modbus TCP, for demos and tests.

It serves any register map's layout (a SunSpec map as a real ``SunS`` chain) with values from a
callable that is asked again on every read, and it can be told to fail::

    sim = MeterSimulator(load_register_map("socomec-countis-e27"),
                         lambda: meter_values((12.0, 4.5, 3.0)),  # A per phase, asked anew
                         energy_wh=(kept_import_wh, kept_export_wh))  # survive a restart
    port = await sim.start()          # 127.0.0.1, port 0 = any free port
    sim.fault = Fault.NAN             # or EXCEPTION, SILENT; Fault.NONE to heal
    await sim.stop()                  # start() again binds the same port
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from enum import StrEnum

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from adapters.meter.registermap import (
    SUNS_MARKER,
    Quantity,
    RegisterMap,
    encode,
    read_plan,
    sunspec_register_map,
)

__all__ = [
    "SUNSPEC_SIM_BASE",
    "Fault",
    "MeterSimulator",
    "meter_values",
    "sunspec_image",
]

SUNSPEC_SIM_BASE = 40000
_MODEL_LENGTH = {213: 124, 203: 105}
_NAN32 = [0x7FC0, 0x0000]  # SunSpec "not implemented" float32
_SF_203 = {6: -2, 15: -1, 17: -2, 22: 1, 54: 0}  # A, V, Hz, W (10 W steps), Wh exponents


class Fault(StrEnum):
    """How the simulated meter misbehaves."""

    NONE = "none"
    EXCEPTION = "exception"  # answer every request with Modbus exception 04
    NAN = "nan"  # serve NaN / "not implemented" values
    SILENT = "silent"  # accept requests, never answer (client times out)


def meter_values(
    current_a: tuple[float, float, float], *, voltage_v: float = 230.0, frequency_hz: float = 50.0
) -> dict[str, float]:
    """Quantities of a resistive load drawing these per-phase currents [A] at voltage_v [V]."""
    values = {"frequency": frequency_hz}
    for phase, amps in enumerate(current_a, start=1):
        values[f"current_l{phase}"] = amps
        values[f"voltage_l{phase}"] = voltage_v
        values[f"power_l{phase}"] = amps * voltage_v
    values["power"] = sum(amps * voltage_v for amps in current_a)
    return values


def sunspec_image(model_id: int, unit: int) -> list[int]:
    """Registers from SUNSPEC_SIM_BASE: SunS, model 1, one meter model (NaN points), end."""
    common = [0] * 66
    common[0:16] = _string_registers("energytree", 16)
    common[16:32] = _string_registers("meter simulator", 16)
    common[64], common[65] = unit, 0x8000  # DA, pad
    length = _MODEL_LENGTH[model_id]
    points = _NAN32 * (length // 2) if model_id == 213 else [0x8000] * length
    return [*SUNS_MARKER, 1, 66, *common, model_id, length, *points, 0xFFFF, 0]


def _string_registers(text: str, count: int) -> list[int]:
    data = text.encode("ascii").ljust(count * 2, b"\0")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, count * 2, 2)]


class MeterSimulator:
    """A pymodbus ModbusTcpServer that looks like the meter a register map describes."""

    def __init__(
        self,
        register_map: RegisterMap,
        values: Callable[[], Mapping[str, float]],
        *,
        unit: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        energy_wh: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.unit = register_map.defaults.unit if unit is None else unit
        self.host = host
        self.port = port
        self._values = values
        self._clock = clock
        self._served, self._image_start, self._image = _layout(register_map, self.unit)
        self._sf = _sf_exponents(self._served)
        self._energy_wh = list(energy_wh)  # import, export; integrated when values() has none
        self._last_t: float | None = None
        self._fault = Fault.NONE
        self._release = asyncio.Event()
        self._server: ModbusTcpServer | None = None

    @property
    def served_map(self) -> RegisterMap:
        """The concrete map served (for SunSpec: the model found by a scan)."""
        return self._served

    @property
    def energy_wh(self) -> tuple[float, float]:
        """The energy registers (import, export) [Wh], to keep them across a restart."""
        return self._energy_wh[0], self._energy_wh[1]

    @property
    def fault(self) -> Fault:
        return self._fault

    @fault.setter
    def fault(self, fault: Fault) -> None:
        self._fault = fault
        if fault is Fault.SILENT:
            self._release.clear()
        else:
            self._release.set()

    async def start(self) -> int:
        """Listen (again) and return the bound port; a restart keeps the first port."""
        if self._server is not None:
            return self.port
        device = SimDevice(
            id=self.unit,
            simdata=[SimData(self._image_start, values=list(self._image),
                             datatype=DataType.REGISTERS)],
            action=self._on_request,
        )
        server = ModbusTcpServer(device, address=(self.host, self.port))
        await server.serve_forever(background=True)
        self._server = server
        self.port = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self.port

    async def stop(self) -> None:
        """Close the listener and every client connection."""
        server, self._server = self._server, None
        self._release.set()  # let silent requests finish before the sockets go
        if server is not None:
            await server.shutdown()

    async def _on_request(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus SimDevice action: refresh the registers before every request."""
        if self._fault is Fault.SILENT:
            await self._release.wait()
            return ExcCodes.DEVICE_FAILURE
        if set_values is not None:
            return ExcCodes.ILLEGAL_ADDRESS  # a meter's measurements are read-only
        if self._fault is Fault.EXCEPTION:
            return ExcCodes.DEVICE_FAILURE
        quantities = self._current_values()
        if self._fault is Fault.NAN:
            quantities = dict.fromkeys(quantities, math.nan)
        for register, words in encode(self._served, quantities, sf_exponents=self._sf).items():
            offset = register - start_address
            current_registers[offset : offset + len(words)] = words
        return None

    def _current_values(self) -> dict[str, float]:
        quantities = dict(self._values())
        now = self._clock()
        if self._last_t is not None:
            power_w = quantities.get("power", 0.0)
            self._energy_wh[0 if power_w >= 0 else 1] += abs(power_w) * (now - self._last_t) / 3600
        self._last_t = now
        quantities.setdefault(Quantity.ENERGY_IMPORT.value, self._energy_wh[0])
        quantities.setdefault(Quantity.ENERGY_EXPORT.value, self._energy_wh[1])
        return quantities


def _layout(register_map: RegisterMap, unit: int) -> tuple[RegisterMap, int, list[int]]:
    """(map served, first register, initial register image) for a map."""
    if register_map.sunspec:
        model_id = register_map.sunspec[0]
        served = sunspec_register_map(model_id, SUNSPEC_SIM_BASE + 70, register_map)
        return served, SUNSPEC_SIM_BASE, sunspec_image(model_id, unit)
    blocks = read_plan(register_map)
    start = min(b.start for b in blocks)
    end = max(b.start + b.count for b in blocks)
    return register_map, start, [0] * (end - start)


def _sf_exponents(served: RegisterMap) -> dict[int, int]:
    """Scale-factor exponents for a SunSpec 203 layout, keyed by absolute SF register."""
    sf_registers = {spec.sf_address for spec in served.values.values()} - {None}
    if not sf_registers:
        return {}
    model_address = min(b.start for b in served.blocks) - 2
    return {model_address + off: exp for off, exp in _SF_203.items()
            if model_address + off in sf_registers}
