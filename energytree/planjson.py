"""A plan as the JSON array of ``EnforcedLimits`` that ``energytree plan`` prints, written fast.

``Plan.enforced_limits`` builds one pydantic object per EVSE and slot, and dumping them takes
many times longer than the solve for a large site (1000 EVSEs × 96 slots is 96 000 entries).
The text here is the same JSON (same fields, order and values, checked by a test), written
from the plan's arrays: each distinct limit, each slot's timestamp and price, and each entry
that occurs (a slot with a limit) is formatted once, put in place with numpy indexing, and
the whole text is one string join.
"""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np

from energytree.allocator import EPS
from energytree.plan import Plan, floor_towards_zero
from energytree.types import format_timestamp

__all__ = ["enforced_limits_json"]


def _limits_text(amps: float, phases: int, watts: float) -> str:
    if abs(amps) <= EPS:
        amps = watts = 0.0
    return (f'{{"total_power_W": {json.dumps(watts)}, "ac_max_current_A": {json.dumps(amps)}, '
            f'"ac_max_phase_count": {phases}}}')


def _slot_texts(plan: Plan) -> list[tuple[str, str]]:
    """Per slot: the entry's opening (its timestamp) and its closing (the price, if known)."""
    p = plan.problem
    texts = []
    for t in range(p.slots):
        stamp = json.dumps(format_timestamp(p.grid.start_time(t)))
        price = p.price_import[t]
        tail = "}" if np.isnan(price) else (
            f', "price_per_kwh": {{"timestamp": {stamp}, "value": {json.dumps(float(price))}, '
            f'"currency": "EUR"}}}}')
        texts.append((f'{{"timestamp": {stamp}, "limits_to_root": ', tail))
    return texts


def _objects(texts: list[str]) -> np.ndarray:
    array = np.empty(len(texts), dtype=object)
    array[:] = texts
    return array


def _codes(amps: np.ndarray, phases: np.ndarray, watts: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """A code per entry of equal rounded limits, and one entry's index for each code.

    The rounded values are whole hundredths of an ampere and tenths of a watt (and never
    -0.0: ``floor_towards_zero`` adds 0.0), so one integer key per entry and one sort do;
    values too large for such a key are told apart by their bits, column by column.
    """
    steps_a, steps_w = np.rint(amps * 100), np.rint(watts * 10)
    top_a, top_w = np.abs(steps_a).max(initial=0), np.abs(steps_w).max(initial=0)
    span_p, span_w = int(phases.max(initial=0)) + 1, 2 * int(min(top_w, 2**62)) + 1
    if (np.isfinite(top_a) and np.isfinite(top_w) and phases.min(initial=0) >= 0
            and (2 * top_a + 1) * span_p * span_w < 2**62):
        key = ((steps_a.astype(np.int64) * span_p + phases) * span_w
               + steps_w.astype(np.int64) + span_w // 2)
    else:
        key = np.zeros(amps.shape, dtype=np.int64)
        for column in (amps.view(np.int64), phases, watts.view(np.int64)):
            values, inverse = np.unique(column, return_inverse=True)
            key = key * len(values) + inverse.reshape(column.shape)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return inverse.reshape(key.shape), first


def _root_side(plan: Plan) -> list[str]:
    """Each EVSE's limit now, as ``Plan.slot_limits(e, 0)`` gives it."""
    amps, watts = plan.current_a[:, 0], plan.power_w[:, 0]
    idle = np.abs(amps) <= EPS
    amps = floor_towards_zero(np.where(idle, 0.0, amps), 2)
    watts = floor_towards_zero(np.where(idle, 0.0, watts), 1)
    return [_limits_text(a, p, w) for a, p, w in zip(
        amps.tolist(), plan.phases[:, 0].astype(int).tolist(), watts.tolist(), strict=True)]


def enforced_limits_json(plan: Plan, valid_until: datetime, valid_for_s: int) -> str:
    """The whole plan, one ``EnforcedLimits`` per EVSE in tree order, as JSON text.

    Each entry that occurs (a slot with a limit) is written once and put in its places in
    one array of strings ([EVSE, slot, entry or separator]), which is joined at the end.
    """
    n, t_count = plan.current_a.shape
    if n == 0:
        return "[\n\n]\n"
    amps = floor_towards_zero(plan.current_a, 2).ravel()
    watts = floor_towards_zero(plan.power_w, 1).ravel()
    phases = plan.phases.astype(np.int64).ravel()
    code, first = _codes(amps, phases, watts)
    limits = [_limits_text(float(amps[i]), int(phases[i]), float(watts[i]))
              for i in first.tolist()]
    slots = _slot_texts(plan)
    slot = np.tile(np.arange(t_count), n)
    _, one, entry = np.unique(slot * len(first) + code, return_index=True,
                              return_inverse=True)
    entries = _objects([f"{slots[t][0]}{limits[c]}{slots[t][1]}"
                        for t, c in zip(slot[one].tolist(), code[one].tolist(), strict=True)])
    until = json.dumps(format_timestamp(valid_until))
    pieces = np.empty((n, t_count, 2), dtype=object)
    pieces[:, :, 0] = entries[entry.reshape(n, t_count)]
    pieces[:, :, 1] = ",\n  "
    openings = [f'{{"uuid": {json.dumps(uuid)}, "valid_until": {until}, '
                f'"valid_for": {valid_for_s}, "limits_root_side": {root_side}, '
                '"schedule": [\n  '
                for uuid, root_side in zip(plan.problem.evse_uuids, _root_side(plan),
                                           strict=True)]
    pieces[:, 0, 0] = [opening + first_entry for opening, first_entry
                       in zip(openings, pieces[:, 0, 0], strict=True)]
    pieces[:, -1, 1] = "]},\n"
    pieces[-1, -1, 1] = "]}\n]\n"
    return "[\n" + "".join(pieces.ravel().tolist())
