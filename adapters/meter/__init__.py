"""Grid-meter adapter: declarative register maps, a Modbus TCP poller, a simulator.

The poller implements Alfen's communication states (INITIALIZING, NORMAL, WARNING, ERROR) so
the site falls back to its safe current the moment the meter goes quiet.
"""

from __future__ import annotations

from adapters.meter.registermap import (
    MeterReading,
    Quantity,
    RegisterMap,
    available_maps,
    decode,
    encode,
    load_register_map,
)

__all__ = [
    "MeterReading",
    "Quantity",
    "RegisterMap",
    "available_maps",
    "decode",
    "encode",
    "load_register_map",
]
