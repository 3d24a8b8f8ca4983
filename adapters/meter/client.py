"""Grid-meter poller over Modbus TCP with Alfen's communication state machine.

    INITIALIZING ──ok──▶ NORMAL ──fail──▶ WARNING ──no valid reading for error_after_s──▶ ERROR
         └──fail──▶ WARNING        ▲                                                    │
                                   └───────────────── first valid reading ◀──────────────┘

Anything but NORMAL means "no valid meter data": the caller must run the site on its configured
safe current at once (Alfen "Actief Load Balancing via Modbus TCP/IP", §4.1)::

    client = GridMeterClient(GridMeterConfig(register_map="socomec-countis-e27"),
                             on_reading=use_measured_load, on_state=safe_current_unless_normal)
    await client.start()
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pymodbus.client import AsyncModbusTcpClient

from adapters.meter.link import ModbusLink, PollLoop, modbus_errors
from adapters.meter.registermap import (
    SUNS_MARKER,
    SUNSPEC_BASES,
    MeterReading,
    RegisterMap,
    decode,
    load_register_map,
    read_plan,
    sunspec_register_map,
)
from energytree.errors import MeterError

__all__ = [
    "GridMeterClient",
    "GridMeterConfig",
    "MeterState",
    "next_state",
    "read_registers",
]

log = logging.getLogger(__name__)

_MAX_SUNSPEC_MODELS = 64  # a chain longer than this is broken, not long


class MeterState(StrEnum):
    """Alfen's connection states; only NORMAL carries valid data."""

    INITIALIZING = "INITIALIZING"
    NORMAL = "NORMAL"
    WARNING = "WARNING"
    ERROR = "ERROR"


class GridMeterConfig(BaseModel):
    """Where the grid meter is and how to poll it; port and unit default to the map's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    register_map: str = Field(description="shipped map name or path to a YAML register map")
    host: str = Field("127.0.0.1", min_length=1, description="the meter's address")
    port: int | None = Field(None, ge=1, le=65535, description="default: the map's port")
    unit: int | None = Field(None, ge=0, le=255, description="default: the map's unit id")
    poll_interval_s: float = Field(1.0, gt=0, description="[s] between reads")
    timeout_s: float = Field(2.0, gt=0, description="connect and read timeout [s]")
    error_after_s: float = Field(120.0, gt=0, description="WARNING becomes ERROR after [s]")
    reconnect_min_s: float = Field(1.0, gt=0, description="first reconnect back-off [s]")
    reconnect_max_s: float = Field(30.0, gt=0, description="longest reconnect back-off [s]")
    invert: bool = Field(False, description="meter wired the other way round: flip power")
    max_plausible_current_a: float = Field(
        1000.0, gt=0, description="a reading beyond ± this is rejected [A] per phase; "
        "energytree serve derives it from the connection unless set")


def next_state(state: MeterState, *, ok: bool, silent_s: float, error_after_s: float) -> MeterState:
    """The state after one poll; silent_s = time since the last valid reading (or start) [s]."""
    if ok:
        return MeterState.NORMAL
    if state is MeterState.ERROR or silent_s >= error_after_s:
        return MeterState.ERROR
    return MeterState.WARNING


async def read_registers(
    client: AsyncModbusTcpClient, function: str, start: int, count: int, unit: int
) -> list[int]:
    """One FC3/FC4 read; an exception response becomes MeterError (connection stays up)."""
    read = client.read_holding_registers if function == "holding" else client.read_input_registers
    response = await read(start, count=count, device_id=unit)
    if response.isError():
        code = getattr(response, "exception_code", "?")
        raise MeterError(f"modbus exception {code} reading {count} registers at {start}")
    return list(response.registers)


class GridMeterClient:
    """Polls one grid meter and reports readings and communication-state changes."""

    def __init__(
        self,
        config: GridMeterConfig,
        register_map: RegisterMap | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_reading: Callable[[MeterReading], None] | None = None,
        on_state: Callable[[MeterState], None] | None = None,
    ) -> None:
        self.config = config
        self._map = register_map or load_register_map(config.register_map)
        self._resolved: RegisterMap | None = None if self._map.sunspec else self._map
        self._clock = clock
        self._on_reading = on_reading
        self._on_state = on_state
        self.port = config.port or self._map.defaults.port
        self.unit = self._map.defaults.unit if config.unit is None else config.unit
        self.state = MeterState.INITIALIZING
        self.last_reading: MeterReading | None = None
        self.last_error: str | None = None
        self._started_at = clock()
        self._last_good_at: float | None = None
        self._failed_polls = 0  # since the fault began: the "recovered" line reports them
        self._fault_since = self._started_at
        self._link = ModbusLink(config.host, self.port, config.timeout_s, clock=clock,
                                reconnect_s=(config.reconnect_min_s, config.reconnect_max_s))
        self._loop = PollLoop(f"grid meter {self.where}", self.poll_once, config.poll_interval_s)

    @property
    def where(self) -> str:
        return f"{self.config.host}:{self.port}"

    @property
    def register_map(self) -> RegisterMap | None:
        """The concrete map in use; for SunSpec, None until the scan found the model."""
        return self._resolved

    @property
    def needs_safe_current(self) -> bool:
        """True whenever the site must run on its safe current (no valid meter data)."""
        return self.state is not MeterState.NORMAL

    async def start(self) -> None:
        """Start polling every poll_interval_s in a background task."""
        if not self._loop.running and self._last_good_at is None:
            self._started_at = self._clock()  # the 120 s count from start, not construction
        self._loop.start()

    async def stop(self) -> None:
        """Stop polling and close the connection; safe to call twice."""
        await self._loop.stop()
        self._link.close()

    async def poll_once(self) -> MeterReading | None:
        """Read the meter once, update the state; None if no valid reading was had."""
        try:
            reading = await self._read()
        except MeterError as exc:
            self._failed(str(exc))
            return None
        self._succeeded(reading)
        return reading

    async def _read(self) -> MeterReading:
        client = await self._link.client()
        try:
            with modbus_errors("read failed"):
                rmap = self._resolved or await self._scan_sunspec(client)
                blocks = {
                    block.start: await read_registers(
                        client, rmap.defaults.function, block.start, block.count, self.unit)
                    for block in read_plan(rmap)
                }
        except MeterError as exc:
            if exc.__cause__ is not None:  # transport trouble: reconnect; exception answers: not
                self._link.close(reconnect_later=True)
            raise
        return decode(rmap, blocks, invert=self.config.invert,
                      max_current_a=self.config.max_plausible_current_a)

    async def _scan_sunspec(self, client: AsyncModbusTcpClient) -> RegisterMap:
        """Find "SunS", walk the chain by ID/L, map the first wanted model."""
        chain = await _sunspec_chain(client, self.unit)
        for wanted in self._map.sunspec:
            for model_id, address in chain:
                if model_id == wanted:
                    self._resolved = sunspec_register_map(model_id, address, self._map)
                    return self._resolved
        found = ", ".join(str(model_id) for model_id, _ in chain) or "none"
        raise MeterError(f"no SunSpec meter model {list(self._map.sunspec)} (found: {found})")

    def _succeeded(self, reading: MeterReading) -> None:
        self._last_good_at = self._clock()
        self.last_reading = reading
        self.last_error = None
        self._set_state(MeterState.NORMAL)
        if self._on_reading is not None:
            self._on_reading(reading)

    def _failed(self, reason: str) -> None:
        self.last_error = reason
        if self._failed_polls == 0:
            self._fault_since = self._clock()
        self._failed_polls += 1
        since = self._started_at if self._last_good_at is None else self._last_good_at
        silent_s = self._clock() - since
        self._set_state(next_state(self.state, ok=False, silent_s=silent_s,
                                   error_after_s=self.config.error_after_s))

    def _set_state(self, new: MeterState) -> None:
        if new is self.state:
            return
        self.state = new
        prefix = f"modbus unit {self.unit} ({self.where})"
        if new is MeterState.NORMAL and self._failed_polls:  # the end of a fault
            log.warning("TCP MODBUS unit %s connected via %s again: recovered after %d failed "
                        "polls in %.0f s", self.unit, self.where, self._failed_polls,
                        self._clock() - self._fault_since)
            self._failed_polls = 0
        elif new is MeterState.NORMAL:
            log.info("TCP MODBUS unit %s connected via %s", self.unit, self.where)
        elif new is MeterState.WARNING:
            log.warning("Communication warning for %s: %s", prefix, self.last_error)
        else:
            log.error("Communication error for %s: no valid reading for %g s; last: %s",
                      prefix, self.config.error_after_s, self.last_error)
        if self._on_state is not None:
            self._on_state(new)


async def _sunspec_chain(client: AsyncModbusTcpClient, unit: int) -> list[tuple[int, int]]:
    """(model id, address of its ID register) for every model after the SunS marker."""
    for base in SUNSPEC_BASES:
        try:
            marker = await read_registers(client, "holding", base, 2, unit)
        except MeterError:  # an exception answer: nothing mapped there, try the next base
            continue
        if tuple(marker) == SUNS_MARKER:
            break
    else:
        raise MeterError(f"no SunSpec marker at {', '.join(map(str, SUNSPEC_BASES))}")
    chain: list[tuple[int, int]] = []
    address = base + 2
    for _ in range(_MAX_SUNSPEC_MODELS):
        model_id, length = await read_registers(client, "holding", address, 2, unit)
        if model_id == 0xFFFF:
            return chain
        chain.append((model_id, address))
        address += 2 + length
    raise MeterError(f"SunSpec chain at {base} has no end marker")
