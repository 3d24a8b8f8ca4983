"""Declarative Modbus register maps for grid meters: model, loading, pure decode and encode.

A map is one YAML file per meter model (see ``maps/``); a user adds a meter by writing such a
file and naming its path in the site config. Quantity names are a fixed vocabulary so the
balancer always gets per-phase currents in A, whatever the meter calls them::

    rmap = load_register_map("socomec-countis-e27")
    reading = decode(rmap, {0xC558: registers})     # registers as read, one list per block
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from energytree.errors import ConfigError, MeterError

__all__ = [
    "SUNSPEC_BASES",
    "SUNS_MARKER",
    "Block",
    "MapDefaults",
    "MeterReading",
    "Quantity",
    "RegisterMap",
    "ValueSpec",
    "available_maps",
    "decode",
    "encode",
    "load_register_map",
    "read_plan",
    "register_count",
    "sunspec_register_map",
]

MAX_READ_REGISTERS = 125  # Modbus limit for one FC3/FC4 request
SUNS_MARKER = (0x5375, 0x6E53)  # "SunS"
SUNSPEC_BASES = (40000, 0, 50000)  # probed in this order, as pysunspec2 and gosunspec do

RegisterType = Literal[
    "int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64"
]
WordOrder = Literal["big", "little"]
_STRUCT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f",
           "int64": "q", "uint64": "Q", "float64": "d"}


class Quantity(StrEnum):
    """What a map may read; units: A, V, W (positive = import), Wh, Hz."""

    CURRENT_L1 = "current_l1"
    CURRENT_L2 = "current_l2"
    CURRENT_L3 = "current_l3"
    VOLTAGE_L1 = "voltage_l1"
    VOLTAGE_L2 = "voltage_l2"
    VOLTAGE_L3 = "voltage_l3"
    POWER = "power"
    POWER_L1 = "power_l1"
    POWER_L2 = "power_l2"
    POWER_L3 = "power_l3"
    ENERGY_IMPORT = "energy_import"
    ENERGY_EXPORT = "energy_export"
    FREQUENCY = "frequency"


CURRENTS = (Quantity.CURRENT_L1, Quantity.CURRENT_L2, Quantity.CURRENT_L3)
VOLTAGES = (Quantity.VOLTAGE_L1, Quantity.VOLTAGE_L2, Quantity.VOLTAGE_L3)
PHASE_POWERS = (Quantity.POWER_L1, Quantity.POWER_L2, Quantity.POWER_L3)


def register_count(register_type: str) -> int:
    """Number of 16-bit registers a value of this type occupies."""
    return struct.calcsize(">" + _STRUCT[register_type]) // 2


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValueSpec(_Strict):
    """Where one quantity lives: SI value = raw × scale × 10^(int16 at sf_address)."""

    address: int = Field(ge=0, le=65535, description="0-based PDU address of the first word")
    type: RegisterType = "uint16"
    scale: float = Field(1.0, description="multiplier from raw to SI units (A, V, W, Wh, Hz)")
    word_order: WordOrder | None = Field(None, description="overrides the map's default")
    sf_address: int | None = Field(None, ge=0, le=65535, description="SunSpec scale factor")
    not_implemented: int | None = Field(None, description="raw value meaning 'no value'")

    @model_validator(mode="after")
    def _check(self) -> ValueSpec:
        if self.scale == 0 or not math.isfinite(self.scale):
            raise ValueError("scale must be a finite, non-zero number")
        if self.address + register_count(self.type) > 65536:
            raise ValueError("value runs past register 65535")
        return self

    def spans(self) -> list[tuple[int, int]]:
        """(start, count) of every register this value needs."""
        own = [(self.address, register_count(self.type))]
        return own if self.sf_address is None else [*own, (self.sf_address, 1)]


class Block(_Strict):
    """One contiguous read per poll."""

    start: int = Field(ge=0, le=65535)
    count: int = Field(ge=1, le=MAX_READ_REGISTERS)

    @model_validator(mode="after")
    def _check(self) -> Block:
        if self.start + self.count > 65536:
            raise ValueError("block runs past register 65535")
        return self

    def covers(self, start: int, count: int) -> bool:
        return self.start <= start and start + count <= self.start + self.count


class MapDefaults(_Strict):
    port: int = Field(502, ge=1, le=65535)
    unit: int = Field(1, ge=0, le=255)
    function: Literal["holding", "input"] = "holding"
    word_order: WordOrder = "big"


class RegisterMap(_Strict):
    """A meter model's registers; either ``values`` or ``sunspec`` (models to scan for)."""

    name: str = Field(min_length=1)
    defaults: MapDefaults = MapDefaults()
    blocks: tuple[Block, ...] = ()
    values: dict[Quantity, ValueSpec] = {}
    sunspec: tuple[Literal[213, 203], ...] = ()

    @model_validator(mode="after")
    def _check(self) -> RegisterMap:
        if self.sunspec:
            if self.values or self.blocks:
                raise ValueError("a sunspec map resolves its values by scanning; drop values")
            return self
        missing = [q.value for q in CURRENTS if q not in self.values]
        if missing:
            raise ValueError(f"load balancing needs {', '.join(missing)}")
        for group in (VOLTAGES, PHASE_POWERS):
            present = [q.value for q in group if q in self.values]
            if present and len(present) != 3:
                raise ValueError(f"map all three phases or none: only {', '.join(present)}")
        for quantity, spec in self.values.items():
            for start, count in spec.spans():
                if self.blocks and not any(b.covers(start, count) for b in self.blocks):
                    raise ValueError(f"{quantity.value} at {start} is outside every block")
        return self


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One consistent poll of a grid meter, in SI units; power positive = import."""

    current_a: tuple[float, float, float]
    voltage_v: tuple[float, float, float] | None = None
    power_w: float | None = None
    power_phase_w: tuple[float, float, float] | None = None
    energy_import_wh: float | None = None
    energy_export_wh: float | None = None
    frequency_hz: float | None = None


# --- loading ------------------------------------------------------------------------------


def available_maps() -> list[str]:
    """Names of the maps shipped in ``adapters/meter/maps``."""
    folder = resources.files("adapters.meter") / "maps"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir()
                  if p.name.endswith(".yaml"))


def load_register_map(name_or_path: str | Path) -> RegisterMap:
    """Load a shipped map by name, or any YAML file by path; ConfigError names file and field."""
    text, source = _read_source(str(name_or_path))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"register map {source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"register map {source}: expected a mapping at the top level")
    try:
        return RegisterMap.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"register map {source}: {problems}") from exc


def _read_source(name: str) -> tuple[str, str]:
    looks_like_path = name.endswith((".yaml", ".yml")) or "/" in name or "\\" in name
    if looks_like_path:
        path = Path(name)
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise ConfigError(f"register map {path}: cannot read file: {exc}") from exc
    resource = resources.files("adapters.meter") / "maps" / f"{name}.yaml"
    if not resource.is_file():
        known = ", ".join(available_maps())
        raise ConfigError(f"unknown register map {name!r}; shipped maps: {known}; "
                          "or give a path to a .yaml file")
    return resource.read_text(encoding="utf-8"), f"{name}.yaml"


# --- reading plan, decoding, encoding (pure) ----------------------------------------------


def read_plan(rmap: RegisterMap) -> tuple[Block, ...]:
    """The reads one poll makes: the map's blocks, or adjacent values merged (≤ 125 words)."""
    if rmap.blocks:
        return rmap.blocks
    spans = sorted({span for spec in rmap.values.values() for span in spec.spans()})
    merged: list[list[int]] = []  # [start, end) pairs
    for start, count in spans:
        end = start + count
        joined_end = max(end, merged[-1][1]) if merged else end
        if merged and start <= merged[-1][1] and joined_end - merged[-1][0] <= MAX_READ_REGISTERS:
            merged[-1][1] = joined_end
        else:
            merged.append([start, end])
    return tuple(Block(start=s, count=e - s) for s, e in merged)


def decode(
    rmap: RegisterMap,
    blocks: Mapping[int, Sequence[int]],
    *,
    invert: bool = False,
    max_current_a: float = 1000.0,
) -> MeterReading:
    """Turn the registers read per block (start → words) into a checked MeterReading.

    Raises MeterError for NaN/inf, all-zero voltages or currents beyond ±max_current_a [A]:
    a meter that answers nonsense must trip the same fallback as one that does not answer.
    """
    values = {q: _decode_value(rmap, spec, blocks) for q, spec in rmap.values.items()}
    for quantity, value in values.items():
        if not math.isfinite(value):
            raise MeterError(f"implausible {quantity.value}: {value}")
    sign = -1.0 if invert else 1.0
    currents = (values[CURRENTS[0]], values[CURRENTS[1]], values[CURRENTS[2]])
    for quantity, amps in zip(CURRENTS, currents, strict=True):
        if abs(amps) > max_current_a:
            raise MeterError(
                f"implausible {quantity.value}: {amps:g} A exceeds ±{max_current_a:g} A")
    voltages = _triple(values, VOLTAGES)
    if voltages is not None and all(v == 0 for v in voltages):
        raise MeterError("implausible voltages: all phases read 0 V")
    phase_powers = _triple(values, PHASE_POWERS)
    imported, exported = values.get(Quantity.ENERGY_IMPORT), values.get(Quantity.ENERGY_EXPORT)
    power = values.get(Quantity.POWER)
    return MeterReading(
        current_a=currents,
        voltage_v=voltages,
        power_w=None if power is None else sign * power,
        power_phase_w=None if phase_powers is None else _scaled(phase_powers, sign),
        energy_import_wh=exported if invert else imported,  # a reversed meter counts backwards
        energy_export_wh=imported if invert else exported,
        frequency_hz=values.get(Quantity.FREQUENCY),
    )


def encode(
    rmap: RegisterMap,
    quantities: Mapping[str, float],
    *,
    sf_exponents: Mapping[int, int] | None = None,
) -> dict[int, list[int]]:
    """Inverse of decode: address → registers for each given quantity (for simulators).

    NaN in an integer register becomes ``not_implemented`` (or the type's extreme value), which
    decode reports as implausible. ``sf_exponents`` gives the power of ten per SF register.
    """
    exponents = dict(sf_exponents or {})
    writes: dict[int, list[int]] = {}
    for quantity, spec in rmap.values.items():
        if quantity.value not in quantities:
            continue
        exponent = 0
        if spec.sf_address is not None:
            exponent = exponents.get(spec.sf_address, 0)
            writes[spec.sf_address] = _pack("int16", exponent, "big")
        order = spec.word_order or rmap.defaults.word_order
        raw = _to_raw(spec, quantities[quantity.value] / (spec.scale * 10.0**exponent))
        writes[spec.address] = _pack(spec.type, raw, order)
    return writes


def _decode_value(rmap: RegisterMap, spec: ValueSpec, blocks: Mapping[int, Sequence[int]]) -> float:
    words = _slice(blocks, spec.address, register_count(spec.type))
    raw = _unpack(spec.type, words, spec.word_order or rmap.defaults.word_order)
    if spec.not_implemented is not None and raw == spec.not_implemented:
        return math.nan
    exponent = 0
    if spec.sf_address is not None:
        exponent = _unpack("int16", _slice(blocks, spec.sf_address, 1), "big")
        if not -10 <= exponent <= 10:
            raise MeterError(f"implausible scale factor {exponent} at register {spec.sf_address}")
    return float(raw) * spec.scale * 10.0**exponent


def _slice(blocks: Mapping[int, Sequence[int]], address: int, count: int) -> Sequence[int]:
    for start, words in blocks.items():
        if start <= address and address + count <= start + len(words):
            return words[address - start: address - start + count]
    raise MeterError(f"register {address} (+{count}) was not read")


def _unpack(register_type: str, words: Sequence[int], word_order: str) -> float | int:
    ordered = list(words) if word_order == "big" else list(reversed(words))
    data = struct.pack(f">{len(ordered)}H", *ordered)
    value: float | int = struct.unpack(">" + _STRUCT[register_type], data)[0]
    return value


def _pack(register_type: str, raw: float | int, word_order: str) -> list[int]:
    data = struct.pack(">" + _STRUCT[register_type], raw)
    words = list(struct.unpack(f">{len(data) // 2}H", data))
    return words if word_order == "big" else list(reversed(words))


def _to_raw(spec: ValueSpec, value: float) -> float | int:
    if spec.type.startswith("float"):
        return value
    bits = register_count(spec.type) * 16
    signed = not spec.type.startswith("u")
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    if not math.isfinite(value):
        if spec.not_implemented is not None:
            return spec.not_implemented
        return low if signed else high
    raw = round(value)
    if not low <= raw <= high:
        raise ValueError(f"{value} does not fit {spec.type} at register {spec.address}")
    return raw


def _triple(
    values: Mapping[Quantity, float], group: Sequence[Quantity]
) -> tuple[float, float, float] | None:
    if group[0] not in values:
        return None
    return (values[group[0]], values[group[1]], values[group[2]])


def _scaled(triple: tuple[float, float, float], factor: float) -> tuple[float, float, float]:
    return (triple[0] * factor, triple[1] * factor, triple[2] * factor)


# --- SunSpec (pure part; the scan itself is I/O in client.py) ------------------------------

# Offsets from the model start (offset 0 = ID). 213: float32, SunSpec model JSON.
_SUNSPEC_213 = {
    Quantity.CURRENT_L1: 4, Quantity.CURRENT_L2: 6, Quantity.CURRENT_L3: 8,
    Quantity.VOLTAGE_L1: 12, Quantity.VOLTAGE_L2: 14, Quantity.VOLTAGE_L3: 16,
    Quantity.FREQUENCY: 26, Quantity.POWER: 28,
    Quantity.ENERGY_EXPORT: 60, Quantity.ENERGY_IMPORT: 68,
}
# 203: int16 + scale-factor register (offset), energies acc32 with TotWh_SF at 54.
_SUNSPEC_203: dict[Quantity, tuple[int, RegisterType, int]] = {
    Quantity.CURRENT_L1: (3, "int16", 6), Quantity.CURRENT_L2: (4, "int16", 6),
    Quantity.CURRENT_L3: (5, "int16", 6),
    Quantity.VOLTAGE_L1: (8, "int16", 15), Quantity.VOLTAGE_L2: (9, "int16", 15),
    Quantity.VOLTAGE_L3: (10, "int16", 15),
    Quantity.FREQUENCY: (16, "int16", 17), Quantity.POWER: (18, "int16", 22),
    Quantity.ENERGY_EXPORT: (38, "uint32", 54), Quantity.ENERGY_IMPORT: (46, "uint32", 54),
}


def sunspec_register_map(model_id: int, model_address: int, rmap: RegisterMap) -> RegisterMap:
    """The concrete map of a SunSpec meter model found at ``model_address`` (where ID sits).

    Only mandatory points are mapped: optional ones may hold the "not implemented" value.
    """
    name = f"{rmap.name} (SunSpec model {model_id} at {model_address})"
    defaults = rmap.defaults.model_copy(update={"word_order": "big"})
    if model_id == 213:
        values = {q: ValueSpec(address=model_address + off, type="float32")
                  for q, off in _SUNSPEC_213.items()}
        block = Block(start=model_address + 2, count=68)  # A .. TotWhImp
    elif model_id == 203:
        values = {
            q: ValueSpec(address=model_address + off, type=kind,
                         sf_address=model_address + sf,
                         not_implemented=-32768 if kind == "int16" else None)
            for q, (off, kind, sf) in _SUNSPEC_203.items()
        }
        block = Block(start=model_address + 2, count=53)  # A .. TotWh_SF
    else:
        raise MeterError(f"SunSpec model {model_id} is not a supported meter model")
    return RegisterMap(name=name, defaults=defaults, blocks=(block,), values=values)
