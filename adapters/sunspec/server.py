"""Modbus TCP server with cFos' SunSpec map: 40098 = grid power [W], 40968 = limit [%].

pymodbus only moves bytes here; ``registers`` decides what the image holds and what a write
means. The device's access hook runs before pymodbus touches the registers, so a rejected write
changes nothing: reads (FC3, FC4: one shared image) refresh the image from the site, writes
(FC6, FC16) are decoded, handed to ``on_write`` and only then land.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from energytree.errors import ConfigError, RequestError

from .registers import (
    BASE_ADDRESS,
    Parameter,
    SunSpecValues,
    Write,
    WriteRejected,
    build_image,
    decode_write,
    image_size,
    published_variables,
)

__all__ = ["OnWrite", "SunSpecServer", "SunSpecServerConfig", "ValuesProvider"]

log = logging.getLogger(__name__)

ValuesProvider = Callable[[], SunSpecValues]
OnWrite = Callable[[Write], None] | Callable[[Write], Awaitable[None]]

READS = frozenset({3, 4})  # read holding / input registers: the same image
WRITES = frozenset({6, 16})  # write single / multiple registers
PRINTABLE_ASCII = r"^[\x20-\x7e]*$"


def _package_version() -> str:
    try:
        return version("energytree")
    except PackageNotFoundError:  # running from a bare checkout
        return "0"


def _parameter(value: Any) -> Any:
    """Accept parameter names as a site file writes them (``max_total_current_ma``)."""
    if isinstance(value, str) and value.upper() in Parameter.__members__:
        return Parameter[value.upper()]
    return value


class SunSpecServerConfig(BaseModel):
    """Where the SunSpec server listens and how it names itself (SunSpec model 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Address to listen on; 0.0.0.0 for all.")
    port: int = Field(1502, ge=0, le=65535, description="502 needs root; 0 picks a free port.")
    unit_id: int = Field(1, ge=1, le=247, description="Modbus unit id the map answers on.")
    manufacturer: str = Field("energytree", min_length=1, max_length=32,
                              pattern=PRINTABLE_ASCII, description="SunSpec model 1")
    model: str = Field("energytree", min_length=1, max_length=32, pattern=PRINTABLE_ASCII,
                       description="SunSpec model 1")
    version: str = Field(default_factory=_package_version, max_length=16,
                         pattern=PRINTABLE_ASCII, description="SunSpec model 1")
    serial: str = Field("1", min_length=1, max_length=32, pattern=PRINTABLE_ASCII,
                        description="SunSpec model 1")
    max_variables: int = Field(
        32, ge=0, le=1000, description="Room reserved for model 60002 (22 registers each)."
    )
    writable_parameters: frozenset[Annotated[Parameter, BeforeValidator(_parameter)]] = Field(
        frozenset(),
        description="Model-60000 points besides the percentage that a master may write.",
    )


class SunSpecServer:
    """The site as a cFos-compatible SunSpec device on Modbus TCP.

    Usage::

        server = SunSpecServer(config, values_provider=site.sunspec_values, on_write=apply)
        port = await server.start()
        ...
        await server.stop()

    ``on_write`` gets every accepted write before it lands; raising ``RequestError`` answers
    exception 0x03 and changes nothing. ``values_provider`` is the truth read back, so a
    written percentage reads back once the site has applied it.
    """

    def __init__(
        self, config: SunSpecServerConfig, values_provider: ValuesProvider, on_write: OnWrite
    ) -> None:
        self.config = config
        self._values_provider = values_provider
        self._on_write = on_write
        self._variable_names: tuple[str, ...] = ()
        self._server: ModbusTcpServer | None = None

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with ``port=0``)."""
        if self._server is None or self._server.transport is None:
            raise RuntimeError("the SunSpec server is not running")
        sockets = self._server.transport.sockets  # type: ignore[attr-defined]
        port: int = sockets[0].getsockname()[1]
        return port

    async def start(self) -> int:
        """Listen on ``config.host:config.port``; returns the bound port."""
        if self._server is not None:
            raise RuntimeError("the SunSpec server is already running")
        device = SimDevice(
            id=self.config.unit_id,
            simdata=[SimData(BASE_ADDRESS, values=self._image(), datatype=DataType.REGISTERS)],
            action=self._on_access,
        )
        # Any other unit id lands on id 0: an empty map, so 0x02 instead of a logged KeyError.
        others = SimDevice(id=0, simdata=[SimData(0, count=1, datatype=DataType.INVALID)])
        address = (self.config.host, self.config.port)
        self._server = ModbusTcpServer([device, others], framer=FramerType.SOCKET, address=address)
        try:
            await self._server.serve_forever(background=True)
        except RuntimeError as exc:
            self._server = None
            raise ConfigError(f"cannot listen for Modbus on {address[0]}:{address[1]}") from exc
        log.info("SunSpec server listening on %s:%d", self.config.host, self.port)
        return self.port

    async def stop(self) -> None:
        """Close the listener and every connection; a no-op when not running."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()

    def _image(self) -> list[int]:
        """The current image, padded to the fixed size reserved for ``max_variables``."""
        values = self._values_provider()
        variables = published_variables(values.variables, self.config.max_variables)
        self._variable_names = tuple(name for name, _ in variables)
        image = build_image(
            replace(values, variables=variables),
            manufacturer=self.config.manufacturer,
            model=self.config.model,
            version=self.config.version,
            serial=self.config.serial,
            unit_id=self.config.unit_id,
        )
        return image + [0] * (image_size(self.config.max_variables) - len(image))

    async def _on_access(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus' SimDevice action: runs before every access; a code rejects it."""
        try:
            if set_values is None:
                return self._refresh(function_code, start_address, current_registers)
            if function_code not in WRITES:
                return ExcCodes.ILLEGAL_FUNCTION
            await self._write(address, [int(value) for value in set_values])
        except WriteRejected as exc:
            log.info("SunSpec write to %d rejected: %s", address, exc)
            return ExcCodes(exc.code)
        except RequestError as exc:
            log.info("SunSpec write to %d refused by the site: %s", address, exc)
            return ExcCodes.ILLEGAL_VALUE
        except Exception:
            log.exception("SunSpec access fc=%d at %d failed", function_code, address)
            return ExcCodes.DEVICE_FAILURE
        return None

    def _refresh(
        self, function_code: int, start_address: int, current_registers: list[int]
    ) -> ExcCodes | None:
        # FC6 also reads back after writing; only real reads refresh, so its echo stays.
        if function_code not in READS:
            return None if function_code in WRITES else ExcCodes.ILLEGAL_FUNCTION
        image = self._image()
        offset = BASE_ADDRESS - start_address
        current_registers[offset : offset + len(image)] = image
        return None

    async def _write(self, address: int, registers: list[int]) -> None:
        # Variable names as last served, so a master writes the variable it has read.
        write = decode_write(
            address,
            registers,
            variable_names=self._variable_names,
            writable_parameters=self.config.writable_parameters,
        )
        result = self._on_write(write)
        if inspect.isawaitable(result):
            await result
