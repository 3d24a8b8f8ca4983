"""The cFos-compatible SunSpec register image, and what a write to it means.

Pure: no sockets, no clocks. Addresses are 0-based Modbus PDU addresses, as in cFos' own list
(a master sends 40098 = 0x9CA2 for the grid power). The chain, each model ``ID, L, points``:

    40000 "SunS" | 40002 model 1, L=66 | 40070 … 40826 seven model 213, L=124
    40952 model 60000, L=16 | 40970 model 60001, L=32 | 41004 model 60002, L=22·n | 0xFFFF, 0

float32 points are IEEE 754, high word first; a value we do not have is NaN (0x7FC00000),
which SunSpec reads as "not implemented". Writable: the eight model-60000 parameters (the
percentage at 40968 always, the others only when enabled), the 32 flags of 60001 and the
variable values of 60002. One request writes exactly one point (FC16 for a float32 pair,
FC6 or FC16 for a flag); anything else is a ``WriteRejected`` carrying its Modbus code.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, fields
from enum import IntEnum
from functools import partial
from typing import Any

from energytree.errors import ConfigError, RequestError

__all__ = [
    "BASE_ADDRESS",
    "FLAG_COUNT",
    "GRID_POWER_ADDRESS",
    "METER_ADDRESSES",
    "PERCENT_ADDRESS",
    "ExceptionCode",
    "MeterValues",
    "Parameter",
    "Parameters",
    "SetFlag",
    "SetParameter",
    "SetPercent",
    "SetVariable",
    "SunSpecValues",
    "Write",
    "WriteRejected",
    "build_image",
    "decode_float",
    "decode_write",
    "encode_float",
    "flag_address",
    "image_size",
    "model_addresses",
    "parameter_address",
    "published_variables",
    "variable_value_address",
]

BASE_ADDRESS = 40000
SUNS = (0x5375, 0x6E53)  # "SunS"
END_MODEL = (0xFFFF, 0)
COMMON_ID, COMMON_LENGTH = 1, 66
METER_ID, METER_LENGTH = 213, 124
PARAMETERS_ID, PARAMETERS_LENGTH = 60000, 16
FLAGS_ID, FLAG_COUNT = 60001, 32
VARIABLES_ID = 60002
VARIABLE_NAME_REGISTERS = 20
VARIABLE_NAME_BYTES = 2 * VARIABLE_NAME_REGISTERS
VARIABLE_REGISTERS = VARIABLE_NAME_REGISTERS + 2  # name + float32 value

#: The seven model-213 blocks in cFos' order; ``SunSpecValues`` has one field per name.
METER_NAMES = (
    "grid",  # grid consumption ("Netzbezug"), W at 40098
    "consumers",  # total consumers
    "generators",  # total generators
    "pv_surplus",
    "evse_used",  # utilised wallbox power
    "evse_available",  # available wallbox power
    "fault",  # fault power ("Fehler-Leistung")
)

COMMON_ADDRESS = BASE_ADDRESS + len(SUNS)
METER_ADDRESSES = tuple(
    COMMON_ADDRESS + 2 + COMMON_LENGTH + i * (2 + METER_LENGTH) for i in range(len(METER_NAMES))
)
PARAMETERS_ADDRESS = METER_ADDRESSES[-1] + 2 + METER_LENGTH
FLAGS_ADDRESS = PARAMETERS_ADDRESS + 2 + PARAMETERS_LENGTH
VARIABLES_ADDRESS = FLAGS_ADDRESS + 2 + FLAG_COUNT


def _point(offset: int) -> Any:
    """A model 213 float32 point at ``offset`` from the model's ID register; None → NaN."""
    return field(default=None, metadata={"offset": offset})


@dataclass(frozen=True)
class MeterValues:
    """One model 213 block ("ac_meter_abcn_float"); comments name the SunSpec point.

    The other float points of its 124 registers are NaN; Evt (offset 124, bitfield32) is 0.
    """

    current_a: float | None = _point(2)  # A
    current_l1_a: float | None = _point(4)  # AphA
    current_l2_a: float | None = _point(6)  # AphB
    current_l3_a: float | None = _point(8)  # AphC
    voltage_v: float | None = _point(10)  # PhV, average line to neutral
    voltage_l1_v: float | None = _point(12)  # PhVphA
    voltage_l2_v: float | None = _point(14)  # PhVphB
    voltage_l3_v: float | None = _point(16)  # PhVphC
    frequency_hz: float | None = _point(26)  # Hz
    power_w: float | None = _point(28)  # W, register 40098 in the grid block
    power_l1_w: float | None = _point(30)  # WphA
    power_l2_w: float | None = _point(32)  # WphB
    power_l3_w: float | None = _point(34)  # WphC
    apparent_power_va: float | None = _point(36)  # VA
    reactive_power_var: float | None = _point(44)  # VAR
    export_wh: float | None = _point(60)  # TotWhExp
    import_wh: float | None = _point(68)  # TotWhImp


METER_POINTS = {f.name: int(f.metadata["offset"]) for f in fields(MeterValues)}
METER_EVT_OFFSET = 124
GRID_POWER_ADDRESS = METER_ADDRESSES[0] + METER_POINTS["power_w"]


class ExceptionCode(IntEnum):
    """Modbus exception codes (Modbus Application Protocol V1.1b3 §7) we answer with."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_ADDRESS = 0x02
    ILLEGAL_VALUE = 0x03
    DEVICE_FAILURE = 0x04


class WriteRejected(RequestError):
    """A write the map does not accept; ``code`` is the Modbus exception to answer with."""

    def __init__(self, code: ExceptionCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class Parameter(IntEnum):
    """The eight float32 points of cFos model 60000, by index; register 40954 + 2·index."""

    MAX_TOTAL_CURRENT_MA = 0
    POWER_RESERVE_MA = 1
    OVERDRAW_MA = 2
    MAX_TOTAL_EVSE_CURRENT_MA = 3
    MAX_PHASE_IMBALANCE_MA = 4
    LOAD_MANAGEMENT_ACTIVE = 5  # 1/0
    ADD_HOME_TO_IMBALANCE = 6  # 1/0
    MAX_TOTAL_CURRENT_PERCENT = 7  # register 40968; cFos does not persist it


SWITCHES = frozenset({Parameter.LOAD_MANAGEMENT_ACTIVE, Parameter.ADD_HOME_TO_IMBALANCE})


def parameter_address(parameter: Parameter) -> int:
    """Register of a model-60000 point (float32, two registers)."""
    return PARAMETERS_ADDRESS + 2 + 2 * parameter


def flag_address(number: int) -> int:
    """Register of ``CM._flag<number>`` (1…32) in model 60001."""
    return FLAGS_ADDRESS + 1 + number


def variable_value_address(index: int) -> int:
    """Register of the float32 value of the ``index``-th (0-based) published variable."""
    return VARIABLES_ADDRESS + 2 + index * VARIABLE_REGISTERS + VARIABLE_NAME_REGISTERS


PERCENT_ADDRESS = parameter_address(Parameter.MAX_TOTAL_CURRENT_PERCENT)


@dataclass(frozen=True)
class Parameters:
    """Model 60000 in ``Parameter`` order; currents in mA as cFos has them, None → NaN."""

    max_total_current_ma: float | None = None
    power_reserve_ma: float | None = None
    overdraw_ma: float | None = None
    max_total_evse_current_ma: float | None = None
    max_phase_imbalance_ma: float | None = None
    load_management_active: bool | None = None
    add_home_to_imbalance: bool | None = None
    max_total_current_percent: float | None = None

    def as_floats(self) -> list[float]:
        """The eight values as published (bool → 1.0/0.0, None → NaN)."""
        return [_or_nan(getattr(self, f.name)) for f in fields(self)]


@dataclass(frozen=True)
class SunSpecValues:
    """Everything the site publishes under its unit id (cFos' "general values")."""

    grid: MeterValues = MeterValues()
    consumers: MeterValues = MeterValues()
    generators: MeterValues = MeterValues()
    pv_surplus: MeterValues = MeterValues()
    evse_used: MeterValues = MeterValues()
    evse_available: MeterValues = MeterValues()
    fault: MeterValues = MeterValues()
    parameters: Parameters = Parameters()
    flags: tuple[bool, ...] = (False,) * FLAG_COUNT  # CM._flag1 … CM._flag32
    variables: tuple[tuple[str, float], ...] = ()  # (name, value)

    def __post_init__(self) -> None:
        if len(self.flags) != FLAG_COUNT:
            raise ValueError(f"flags needs {FLAG_COUNT} entries, got {len(self.flags)}")


def _or_nan(value: float | bool | None) -> float:
    return math.nan if value is None else float(value)


def encode_float(value: float) -> list[int]:
    """float32, high word first; a value beyond float32's range becomes ±inf, as IEEE rounds."""
    try:
        raw = struct.pack(">f", value)
    except OverflowError:
        raw = struct.pack(">f", math.copysign(math.inf, value))
    return list(struct.unpack(">2H", raw))


def decode_float(registers: Sequence[int]) -> float:
    """The float32 in two registers, high word first."""
    value: float = struct.unpack(">f", struct.pack(">2H", *registers))[0]
    return value


def encode_string(text: str, registers: int) -> list[int]:
    """A SunSpec string: UTF-8, NUL padded to ``registers`` × 2 bytes."""
    raw = text.encode()
    if len(raw) > 2 * registers:
        raise ConfigError(f"{text!r} is longer than {2 * registers} bytes")
    return list(struct.unpack(f">{registers}H", raw.ljust(2 * registers, b"\0")))


def _floats(values: Sequence[float]) -> list[int]:
    return [register for value in values for register in encode_float(value)]


def _common(manufacturer: str, model: str, version: str, serial: str, unit_id: int) -> list[int]:
    """Model 1 (Common), L=66: Mn, Md, Opt, Vr, SN, DA, Pad."""
    if not 1 <= unit_id <= 247:
        raise ConfigError(f"unit id {unit_id} is outside 1…247")
    body = [
        *encode_string(manufacturer, 16),
        *encode_string(model, 16),
        *encode_string("", 8),
        *encode_string(version, 8),
        *encode_string(serial, 16),
        unit_id,
        0x8000,
    ]
    return [COMMON_ID, COMMON_LENGTH, *body]


def _meter(values: MeterValues) -> list[int]:
    """Model 213, L=124: 61 float32 points, then Evt (bitfield32, no events)."""
    points = [math.nan] * ((METER_EVT_OFFSET - 2) // 2)
    for name, offset in METER_POINTS.items():
        points[(offset - 2) // 2] = _or_nan(getattr(values, name))
    return [METER_ID, METER_LENGTH, *_floats(points), 0, 0]


def _flags(flags: Sequence[bool]) -> list[int]:
    """Model 60001, L=32: one int16 0/1 per flag."""
    return [FLAGS_ID, FLAG_COUNT, *(int(flag) for flag in flags)]


def _variables(variables: Sequence[tuple[str, float]]) -> list[int]:
    """Model 60002, L=22·n: per variable a 20-register name and its float32 value."""
    body: list[int] = []
    for name, value in variables:
        body += encode_string(name, VARIABLE_NAME_REGISTERS) + encode_float(value)
    return [VARIABLES_ID, len(body), *body]


def published_variables(
    variables: Sequence[tuple[str, float]], max_variables: int | None = None
) -> tuple[tuple[str, float], ...]:
    """The variables that go into model 60002, in order.

    A name must fit the 40-byte string point (UTF-8, no NUL) or it is left out, since a cut
    name could address the wrong variable; at most ``max_variables`` are published.
    """
    fitting = tuple(
        (name, value)
        for name, value in variables
        if 0 < len(name.encode()) <= VARIABLE_NAME_BYTES and "\0" not in name
    )
    return fitting if max_variables is None else fitting[:max_variables]


def build_image(
    values: SunSpecValues,
    *,
    manufacturer: str,
    model: str,
    version: str,
    serial: str,
    unit_id: int,
    max_variables: int | None = None,
) -> list[int]:
    """All registers from ``BASE_ADDRESS`` up to and including the end model."""
    meters = [register for name in METER_NAMES for register in _meter(getattr(values, name))]
    return [
        *SUNS,
        *_common(manufacturer, model, version, serial, unit_id),
        *meters,
        PARAMETERS_ID,
        PARAMETERS_LENGTH,
        *_floats(values.parameters.as_floats()),
        *_flags(values.flags),
        *_variables(published_variables(values.variables, max_variables)),
        *END_MODEL,
    ]


def image_size(variable_count: int) -> int:
    """Length of ``build_image``'s result when it publishes ``variable_count`` variables."""
    return VARIABLES_ADDRESS + 2 + variable_count * VARIABLE_REGISTERS + 2 - BASE_ADDRESS


def model_addresses(variable_count: int) -> list[tuple[int, int]]:
    """``(model id, address of its ID register)`` along the chain, end model included."""
    chain = [(COMMON_ID, COMMON_ADDRESS)]
    chain += [(METER_ID, address) for address in METER_ADDRESSES]
    chain += [(PARAMETERS_ID, PARAMETERS_ADDRESS), (FLAGS_ID, FLAGS_ADDRESS)]
    chain.append((VARIABLES_ID, VARIABLES_ADDRESS))
    chain.append((END_MODEL[0], VARIABLES_ADDRESS + 2 + variable_count * VARIABLE_REGISTERS))
    return chain


@dataclass(frozen=True)
class SetPercent:
    """Register 40968 (model 60000 offset 16): the grid operator's limit [%], not persisted."""

    value: float


@dataclass(frozen=True)
class SetParameter:
    """Registers 40954…40967 (model 60000 offsets 2…14): a site parameter (mA, or 1/0)."""

    parameter: Parameter
    value: float


@dataclass(frozen=True)
class SetFlag:
    """Registers 40972…41003 (model 60001 offsets 2…33): ``CM._flag<number>`` ← value."""

    number: int
    value: bool


@dataclass(frozen=True)
class SetVariable:
    """Model 60002, value point of a variable: sets it to a constant (replaces a formula)."""

    name: str
    value: float


Write = SetPercent | SetParameter | SetFlag | SetVariable
_Decoder = Callable[[Sequence[int]], Write]


def decode_write(
    address: int,
    registers: Sequence[int],
    *,
    variable_names: Sequence[str] = (),
    writable_parameters: Collection[Parameter] = frozenset(),
) -> Write:
    """What a write of ``registers`` at ``address`` (FC6 or FC16) asks for.

    ``variable_names`` are the names published in model 60002, in order. Model-60000 points
    other than the percentage are writable only if listed in ``writable_parameters``.
    Raises ``WriteRejected``: 0x02 unless the request covers exactly one writable point,
    0x03 for a value that point cannot take (NaN, ±inf, a percentage outside 0…100, a
    negative current, a flag or switch other than 0/1).
    """
    if not registers or not all(0 <= register <= 0xFFFF for register in registers):
        raise WriteRejected(ExceptionCode.ILLEGAL_VALUE, "expected registers of 0…0xFFFF")
    decoder = _decoder_for(address, len(registers), variable_names, writable_parameters)
    return decoder(registers)


def _decoder_for(
    address: int,
    count: int,
    variable_names: Sequence[str],
    writable_parameters: Collection[Parameter],
) -> _Decoder:
    parameter_offset = address - parameter_address(Parameter(0))
    if count == 2 and parameter_offset % 2 == 0 and 0 <= parameter_offset < PARAMETERS_LENGTH:
        parameter = Parameter(parameter_offset // 2)
        if parameter is Parameter.MAX_TOTAL_CURRENT_PERCENT:
            return _decode_percent
        if parameter in writable_parameters:
            return partial(_decode_parameter, parameter)
    number = address - flag_address(1) + 1
    if count == 1 and 1 <= number <= FLAG_COUNT:
        return partial(_decode_flag, number)
    index, rest = divmod(address - variable_value_address(0), VARIABLE_REGISTERS)
    if count == 2 and rest == 0 and 0 <= index < len(variable_names):
        return partial(_decode_variable, variable_names[index])
    raise WriteRejected(
        ExceptionCode.ILLEGAL_ADDRESS,
        f"{count} register(s) at {address} are not exactly one writable point",
    )


def _finite(registers: Sequence[int]) -> float:
    value = decode_float(registers)
    if not math.isfinite(value):
        raise WriteRejected(ExceptionCode.ILLEGAL_VALUE, f"{value} is not a finite number")
    return value


def _decode_percent(registers: Sequence[int]) -> Write:
    value = _finite(registers)
    if not 0.0 <= value <= 100.0:
        raise WriteRejected(ExceptionCode.ILLEGAL_VALUE, f"percent {value} is outside 0…100")
    return SetPercent(value + 0.0)  # -0.0 → 0.0


def _decode_parameter(parameter: Parameter, registers: Sequence[int]) -> Write:
    value = _finite(registers)
    if parameter in SWITCHES and value not in (0.0, 1.0):
        raise WriteRejected(ExceptionCode.ILLEGAL_VALUE, f"{parameter.name} takes 1 or 0")
    if value < 0.0:
        raise WriteRejected(ExceptionCode.ILLEGAL_VALUE, f"{parameter.name} {value} is negative")
    return SetParameter(parameter, value)


def _decode_flag(number: int, registers: Sequence[int]) -> Write:
    if registers[0] not in (0, 1):
        raise WriteRejected(ExceptionCode.ILLEGAL_VALUE, f"flag {number} takes 1 or 0")
    return SetFlag(number, registers[0] == 1)


def _decode_variable(name: str, registers: Sequence[int]) -> Write:
    return SetVariable(name, _finite(registers))
