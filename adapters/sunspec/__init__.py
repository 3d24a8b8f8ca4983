"""cFos-compatible SunSpec server: the grid operator reads 40098 [W] and writes 40968 [%].

``registers`` is the pure register map (image, encoding, what a write means); ``server`` puts
it on Modbus TCP with pymodbus. ``model_60000.json`` describes cFos' custom parameter model for
SunSpec clients such as pysunspec2.
"""

from __future__ import annotations

from .registers import (
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
    WriteRejected,
)
from .server import SunSpecServer, SunSpecServerConfig

__all__ = [
    "GRID_POWER_ADDRESS",
    "PERCENT_ADDRESS",
    "MeterValues",
    "Parameter",
    "Parameters",
    "SetFlag",
    "SetParameter",
    "SetPercent",
    "SetVariable",
    "SunSpecServer",
    "SunSpecServerConfig",
    "SunSpecValues",
    "Write",
    "WriteRejected",
]
