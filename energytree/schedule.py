"""Schedule semantics: which entry applies when, and a node's own limit per slot.

The rules are EVerest's, checked against its test fixtures:

- the first entry also applies before its timestamp, the last one forever after;
- an entry applies from its timestamp inclusive; of duplicate timestamps the last wins;
- an **empty** schedule means "nothing allowed" (0 A, 0 W), not "unlimited";
- a node's own limit is ``min(root side, leaves side ÷ conversion_efficiency)`` for power,
  ``min`` for the maximum current and phase count, ``max`` for the minimum current and count.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

import numpy as np

from energytree.limits import PHASES, SlotLimits, labels, zero
from energytree.slots import SlotGrid
from energytree.types import (
    FrequencyWattPoint,
    LimitsReq,
    ScheduleReqEntry,
    ScheduleSetpointEntry,
    TimedValue,
)

__all__ = [
    "merge_entries",
    "merge_entry",
    "prices_per_slot",
    "resample_limits",
    "resample_values",
    "select",
    "setpoints_per_slot",
    "value_at",
    "watts_at_frequency",
]


def select(timestamps_s: np.ndarray, at_s: np.ndarray) -> np.ndarray:
    """Index of the entry that applies at each of ``at_s`` (EVerest's selection rule)."""
    timestamps_s = np.asarray(timestamps_s, dtype=float)
    order = np.argsort(timestamps_s, kind="stable")
    position = np.searchsorted(timestamps_s[order], at_s, side="right") - 1
    return order[np.clip(position, 0, None)]


Entry = TypeVar("Entry", ScheduleReqEntry, ScheduleSetpointEntry, TimedValue)


def value_at(entries: Sequence[Entry], moment: datetime) -> Entry | None:
    """The entry in force at ``moment``, or None for an empty schedule."""
    if not entries:
        return None
    stamps = np.array([e.timestamp.timestamp() for e in entries])
    return entries[int(select(stamps, np.array([moment.timestamp()]))[0])]


def _stamps(entries: Sequence[ScheduleReqEntry | ScheduleSetpointEntry | TimedValue]) -> np.ndarray:
    return np.array([e.timestamp.timestamp() for e in entries], dtype=float)


def _min(*values: float | None) -> float:
    """The smallest value given; inf if none is (a loop: this runs per schedule entry)."""
    least: float = np.inf
    for value in values:
        if value is not None and value < least:
            least = value
    return least


def _max(*values: float | None) -> float | None:
    most = None
    for value in values:
        if value is not None and (most is None or value > most):
            most = value
    return most


def _phase_caps(side: LimitsReq) -> list[float | None]:
    per_phase = side.ac_max_current_per_phase_A
    if per_phase is None:
        return [None] * PHASES
    return [per_phase.L1, per_phase.L2, per_phase.L3]


def merge_entry(entry: ScheduleReqEntry) -> tuple[list[float], float, float, int, int]:
    """Collapse one entry's root and leaves side into one root-side limit."""
    root, leaves = entry.limits_to_root, entry.limits_to_leaves
    efficiency = entry.conversion_efficiency or 1.0
    leaves_power = None if leaves.total_power_W is None else leaves.total_power_W / efficiency
    common = _min(root.ac_max_current_A, leaves.ac_max_current_A)
    if root.ac_max_current_per_phase_A is None and leaves.ac_max_current_per_phase_A is None:
        current = [common] * PHASES
    else:
        current = [_min(common, r, lv)
                   for r, lv in zip(_phase_caps(root), _phase_caps(leaves), strict=True)]
    power = _min(root.total_power_W, leaves_power)
    min_current = _max(root.ac_min_current_A, leaves.ac_min_current_A) or 0.0
    max_phases = _min(root.ac_max_phase_count, leaves.ac_max_phase_count)
    min_phases = _max(root.ac_min_phase_count, leaves.ac_min_phase_count) or 1
    max_phases = PHASES if max_phases == np.inf else int(max_phases)
    return current, power, min_current, max_phases, int(min_phases)


def merge_entries(entries: Sequence[ScheduleReqEntry]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``merge_entry`` of many entries as arrays (current [E, 3], power, minimum current,
    phase counts as int8): the fields are read in one pass and the rules applied to columns,
    an absent value as NaN, which ``fmin`` and ``fmax`` pass over."""
    sides = np.array([(r.total_power_W, r.ac_max_current_A, r.ac_min_current_A,
                       r.ac_max_phase_count, r.ac_min_phase_count,
                       lv.total_power_W, lv.ac_max_current_A, lv.ac_min_current_A,
                       lv.ac_max_phase_count, lv.ac_min_phase_count, e.conversion_efficiency)
                      for e in entries for r, lv in ((e.limits_to_root, e.limits_to_leaves),)],
                     dtype=float).reshape(-1, 11)
    root, leaves = sides[:, :5], sides[:, 5:10]
    efficiency = np.where(np.isnan(sides[:, 10]), 1.0, sides[:, 10])
    common = np.fmin(root[:, 1], leaves[:, 1])
    current = np.repeat(common[:, None], PHASES, axis=1)
    for k, entry in enumerate(entries):
        if (entry.limits_to_root.ac_max_current_per_phase_A is not None
                or entry.limits_to_leaves.ac_max_current_per_phase_A is not None):
            caps = np.array([_phase_caps(entry.limits_to_root),
                             _phase_caps(entry.limits_to_leaves)], dtype=float)
            current[k] = np.fmin(common[k], np.fmin(caps[0], caps[1]))
    power = np.fmin(root[:, 0], leaves[:, 0] / efficiency)
    least = np.fmax(root[:, 2], leaves[:, 2])
    max_phases = np.fmin(root[:, 3], leaves[:, 3])
    min_phases = np.fmax(root[:, 4], leaves[:, 4])
    return (np.where(np.isnan(current), np.inf, current),
            np.where(np.isnan(power), np.inf, power),
            np.where(least > 0, least, 0.0),  # none (or -0.0) is 0 A
            np.where(np.isnan(max_phases), PHASES, max_phases).astype(np.int8),
            np.where(min_phases > 0, min_phases, 1).astype(np.int8))  # none or 0: 1


def resample_limits(
    entries: Sequence[ScheduleReqEntry], grid: SlotGrid, source: str
) -> SlotLimits:
    """A node's own limits on every slot of ``grid``; ``source`` labels them."""
    slots = len(grid)
    if not entries:
        return zero(slots, f"{source} (empty schedule)")
    merged = [merge_entry(e) for e in entries]
    pick = select(_stamps(entries), grid.starts)
    current = np.array([m[0] for m in merged], dtype=float)[pick]
    return SlotLimits(
        current_a=current,
        power_w=np.array([m[1] for m in merged], dtype=float)[pick],
        min_current_a=np.array([m[2] for m in merged], dtype=float)[pick],
        max_phases=np.array([m[3] for m in merged], dtype=np.int8)[pick],
        min_phases=np.array([m[4] for m in merged], dtype=np.int8)[pick],
        current_source=labels(source, (slots, PHASES)),
        power_source=labels(source, (slots,)),
    )


def prices_per_slot(entries: Sequence[ScheduleReqEntry], grid: SlotGrid) -> np.ndarray:
    """Price per kWh on every slot; NaN where the schedule carries none."""
    if not entries:
        return np.full(len(grid), np.nan)
    values = np.array(
        [np.nan if e.price_per_kwh is None else e.price_per_kwh.value for e in entries]
    )
    return values[select(_stamps(entries), grid.starts)]


def resample_values(series: Sequence[TimedValue], grid: SlotGrid, default: float) -> np.ndarray:
    """A step series (e.g. a forecast) on every slot; ``default`` for an empty series."""
    if not series:
        return np.full(len(grid), default)
    values = np.array([v.value for v in series], dtype=float)
    return values[select(_stamps(series), grid.starts)]


def watts_at_frequency(table: Sequence[FrequencyWattPoint], frequency_hz: float) -> float:
    """Linear interpolation in a frequency–watt table, held at both ends.

    EVerest forgets to divide by the frequency step; this divides, so (49.8 Hz, −7 kW) and
    (50.2 Hz, +7 kW) give 0 W at 50.0 Hz.
    """
    points = sorted(table, key=lambda p: p.frequency_Hz)
    freqs = [p.frequency_Hz for p in points]
    watts = [p.total_power_W for p in points]
    return float(np.interp(frequency_hz, freqs, watts))


def setpoints_per_slot(
    entries: Sequence[ScheduleSetpointEntry], grid: SlotGrid, frequency_hz: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Signed setpoints per slot as (amps, watts); NaN where none applies.

    A frequency table becomes a watt setpoint at the measured frequency and is ignored without
    a measurement. Precedence is EVerest's: amps, then watts, then the frequency table.
    """
    amps = np.full(len(grid), np.nan)
    watts = np.full(len(grid), np.nan)
    if not entries:
        return amps, watts
    pick = select(_stamps(entries), grid.starts)
    for slot, index in enumerate(pick):
        setpoint = entries[int(index)].setpoint
        if setpoint is None:
            continue
        if setpoint.ac_current_A is not None:
            amps[slot] = setpoint.ac_current_A
        elif setpoint.total_power_W is not None:
            watts[slot] = setpoint.total_power_W
        elif setpoint.frequency_table and frequency_hz is not None:
            watts[slot] = watts_at_frequency(setpoint.frequency_table, frequency_hz)
    return amps, watts
