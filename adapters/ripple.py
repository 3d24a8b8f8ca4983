"""Ripple-control receiver: two relay contacts read over Modbus TCP select one of four levels.

The grid operator switches the contacts; each pattern maps to a power level from the site file
(percent of the connection or an absolute limit). A contact that cannot be read means "the
operator's signal is unknown", so the configured failsafe level applies until it reads again.
The contact states are exposed too, so formulas can use them as ``PB.input1``/``PB.input2``::

    def dim(level: RippleLevel, inputs: object) -> None:  # 100 % = a 22 kW connection
        watts = level.limit_w(22_000.0)
        manager.set_external_limits("ripple", "grid", power_limit(manager.clock.now(), watts))

    receiver = RippleReceiver(RippleConfig(input1=Contact(address=0), input2=Contact(address=1)),
                              on_change=dim)
    await receiver.start()
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymodbus.client import AsyncModbusTcpClient

from adapters.meter.link import ModbusLink, PollLoop, modbus_errors
from energytree.errors import MeterError

__all__ = [
    "Contact",
    "Level",
    "RippleConfig",
    "RippleLevel",
    "RippleLevels",
    "RippleReceiver",
    "level_for",
]

log = logging.getLogger(__name__)

PMIN_14A_W = 4200.0  # §14a EnWG: a dimmed controllable consumer keeps at least 4.2 kW

Inputs = tuple[bool, bool]
Source = Literal["open_open", "k1", "k2", "both", "failsafe"]
_PATTERNS: dict[Inputs, Source] = {
    (False, False): "open_open", (True, False): "k1", (False, True): "k2", (True, True): "both",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Contact(_Strict):
    """One relay contact: a coil or a discrete input of the Modbus device."""

    address: int = Field(ge=0, le=65535, description="0-based PDU address")
    kind: Literal["coil", "discrete_input"] = Field("discrete_input",
                                                   description="how it is read")


class Level(_Strict):
    """A limit given as percent of the connection, or as an absolute power."""

    percent: float | None = Field(None, ge=0, le=100, description="[%] of connection power")
    power_w: float | None = Field(None, ge=0, alias="power_W",
                                  description="[W], instead of percent")

    @model_validator(mode="after")
    def _exactly_one(self) -> Level:
        if (self.percent is None) == (self.power_w is None):
            raise ValueError("give exactly one of percent or power_W")
        return self


class RippleLevels(_Strict):
    """The level for each contact pattern (k1 = only contact 1 closed, …)."""

    open_open: Level = Field(Level(percent=100), description="both contacts open")
    k1: Level = Field(Level(percent=60), description="contact 1 closed")
    k2: Level = Field(Level(percent=30), description="contact 2 closed")
    both: Level = Field(Level(power_W=PMIN_14A_W), description="both closed")


class RippleConfig(_Strict):
    name: str = Field("ripple-control receiver", min_length=1, description="for log messages")
    host: str = Field("127.0.0.1", min_length=1, description="the Modbus I/O module")
    port: int = Field(502, ge=1, le=65535, description="its Modbus TCP port")
    unit: int = Field(1, ge=0, le=255, description="its unit id")
    input1: Contact = Field(description="contact 1 (K1)")
    input2: Contact = Field(description="contact 2 (K2)")
    levels: RippleLevels = Field(RippleLevels(), description="the limit for each pattern")
    failsafe: Level = Field(Level(power_W=PMIN_14A_W), description="while contacts are unknown")
    poll_interval_s: float = Field(1.0, gt=0, description="[s] between reads")
    timeout_s: float = Field(1.0, gt=0, description="[s] for an answer")


@dataclass(frozen=True, slots=True)
class RippleLevel:
    """The level in force and where it came from (a contact pattern or "failsafe")."""

    source: Source
    percent: float | None
    power_w: float | None

    def limit_w(self, connection_power_w: float) -> float:
        """The level as a power limit [W] for a connection of connection_power_w [W]."""
        if self.percent is not None:
            return connection_power_w * self.percent / 100.0
        if self.power_w is None:
            raise ValueError(f"level {self.source} has neither percent nor power_w")
        return self.power_w


def level_for(inputs: Inputs | None, config: RippleConfig) -> RippleLevel:
    """Pure mapping: contact states (None = unreadable) → the level in force."""
    if inputs is None:
        return _resolved("failsafe", config.failsafe)
    source = _PATTERNS[inputs]
    return _resolved(source, getattr(config.levels, source))


def _resolved(source: Source, level: Level) -> RippleLevel:
    return RippleLevel(source=source, percent=level.percent, power_w=level.power_w)


class RippleReceiver:
    """Polls the two contacts and reports level changes; starts in failsafe."""

    def __init__(
        self,
        config: RippleConfig,
        *,
        on_change: Callable[[RippleLevel, Inputs | None], None] | None = None,
    ) -> None:
        self.config = config
        self.inputs: Inputs | None = None
        self.level = level_for(None, config)
        self._on_change = on_change
        self._link = ModbusLink(config.host, config.port, config.timeout_s)
        self._failing = 0  # failed reads in a row
        self._loop = PollLoop(f"ripple {self.where}", self.poll_once, config.poll_interval_s)

    @property
    def where(self) -> str:
        config = self.config
        return f"{config.name!r} ({config.host}:{config.port} unit {config.unit})"

    @property
    def formula_inputs(self) -> dict[str, float | None]:
        """``PB.input1``/``PB.input2`` as formulas see them: 1 closed, 0 open, None unknown."""
        if self.inputs is None:
            return {"PB.input1": None, "PB.input2": None}
        return {"PB.input1": float(self.inputs[0]), "PB.input2": float(self.inputs[1])}

    async def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        self._link.close()

    async def poll_once(self) -> RippleLevel:
        """Read both contacts once and apply the resulting level (failsafe on failure)."""
        try:
            inputs: Inputs | None = await self._read_inputs()
        except MeterError as exc:
            inputs = None
            self._link.close()
            if not self._failing:
                log.warning("Ripple-control receiver %s: read failed (%s); using failsafe level",
                            self.where, exc)
            self._failing += 1
        else:
            if self._failing:
                log.warning("Ripple-control receiver %s: contacts readable again: recovered "
                            "after %d failed reads", self.where, self._failing)
            self._failing = 0
        self._apply(inputs)
        return self.level

    def _apply(self, inputs: Inputs | None) -> None:
        level = level_for(inputs, self.config)
        changed = (inputs, level) != (self.inputs, self.level)
        self.inputs, self.level = inputs, level
        if changed and self._on_change is not None:
            self._on_change(level, inputs)

    async def _read_inputs(self) -> Inputs:
        with modbus_errors("read failed"):
            client = await self._link.client()
            first = await self._read_contact(client, self.config.input1)
            second = await self._read_contact(client, self.config.input2)
        return (first, second)

    async def _read_contact(self, client: AsyncModbusTcpClient, contact: Contact) -> bool:
        read = client.read_coils if contact.kind == "coil" else client.read_discrete_inputs
        response = await read(contact.address, count=1, device_id=self.config.unit)
        if response.isError():
            code = getattr(response, "exception_code", "?")
            raise MeterError(f"modbus exception {code} reading {contact.kind} {contact.address}")
        return bool(response.bits[0])
