"""A plan as the JSON array of ``EnforcedLimits`` that ``energytree plan`` prints, written fast.

``Plan.enforced_limits`` builds one pydantic object per EVSE and slot, and dumping them takes
many times longer than the solve for a large site (1000 EVSEs × 96 slots is 96 000 entries).
The text here is the same JSON (same fields, order and values, checked by a test), written
from the plan's arrays: each distinct limit, each slot's timestamp and price, and each entry
that occurs (a slot with a limit) is formatted once, put in place with numpy indexing, and
joined a few dozen EVSEs at a time (the command writes each such piece as it comes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime
from typing import TextIO

import numpy as np

from energytree.allocator import EPS
from energytree.plan import Plan, floor_towards_zero
from energytree.types import format_timestamp

__all__ = ["enforced_limits_chunks", "enforced_limits_json", "write_enforced_limits"]


def _number(value: float) -> str:
    """``json.dumps(value)``: for a finite float that is its ``repr``, without the encoder."""
    return repr(value) if math.isfinite(value) else json.dumps(value)


def _limits_text(amps: float, phases: int, watts: float) -> str:
    if abs(amps) <= EPS:
        amps = watts = 0.0
    return (f'{{"total_power_W": {_number(watts)}, "ac_max_current_A": {_number(amps)}, '
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


def _codes(amps: np.ndarray, phases: np.ndarray, watts: np.ndarray, groups: int = 1
           ) -> tuple[np.ndarray, np.ndarray]:
    """A code per entry of equal rounded limits (and equal position modulo ``groups``: the
    slot, for a plan's [EVSE, slot] cells), and one entry's index for each code.

    The rounded values are whole hundredths of an ampere and tenths of a watt (and never
    -0.0: ``floor_towards_zero`` adds 0.0), so one integer key per entry and one sort do;
    values too large for such a key are told apart by their bits, column by column.
    """
    steps_a, steps_w = np.rint(amps * 100), np.rint(watts * 10)
    top_a, top_w = np.abs(steps_a).max(initial=0), np.abs(steps_w).max(initial=0)
    span_p, span_w = int(phases.max(initial=0)) + 1, 2 * int(min(top_w, 2**62)) + 1
    if (np.isfinite(top_a) and np.isfinite(top_w) and phases.min(initial=0) >= 0
            and (2 * top_a + 1) * span_p * span_w * groups < 2**62):
        key = ((steps_a.astype(np.int64) * span_p + phases) * span_w
               + steps_w.astype(np.int64) + span_w // 2)
    else:
        key = np.zeros(amps.shape, dtype=np.int64)
        for column in (amps.view(np.int64), phases, watts.view(np.int64)):
            values, inverse = np.unique(column, return_inverse=True)
            key = key * len(values) + inverse.reshape(column.shape)
        if groups > 1:  # ranks, so that the groups fit
            key = np.unique(key, return_inverse=True)[1].reshape(key.shape)
    if groups > 1:
        key = key * groups + np.arange(len(key)) % groups
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
    """The whole plan, one ``EnforcedLimits`` per EVSE in tree order, as JSON text."""
    return "".join(enforced_limits_chunks(plan, valid_until, valid_for_s))


def write_enforced_limits(plan: Plan, valid_until: datetime, valid_for_s: int,
                          out: TextIO) -> None:
    """``enforced_limits_json`` written to ``out`` piece by piece: a site's plan is tens of
    MB, and one string of it (and its encoded copy) costs more in fresh memory than the
    writing."""
    for chunk in enforced_limits_chunks(plan, valid_until, valid_for_s):
        out.write(chunk)


def enforced_limits_chunks(plan: Plan, valid_until: datetime, valid_for_s: int,
                           cells_per_chunk: int = 2048) -> Iterator[str]:
    """``enforced_limits_json`` in consecutive pieces of whole EVSEs, about
    ``cells_per_chunk`` slots each.

    Each entry that occurs (a limit in a slot) is written once, with what follows it (the
    separator, or the end of the EVSE's schedule after its last slot), and put in its places
    in one array of strings ([EVSE, slot]), which is joined a chunk at a time.
    """
    n, t_count = plan.current_a.shape
    if n == 0:
        yield "[\n\n]\n"
        return
    amps = floor_towards_zero(plan.current_a, 2).ravel()
    watts = floor_towards_zero(plan.power_w, 1).ravel()
    phases = plan.phases.astype(np.int64).ravel()
    code, first = _codes(amps, phases, watts, t_count)  # the slot is part of an entry
    slots = _slot_texts(plan)
    ends = [",\n  "] * (t_count - 1) + ["]},\n"]
    limits: dict[tuple[float, int, float], str] = {}  # each limit's text, once (no -0.0)
    texts = []
    for cell, a, p, w in zip(first.tolist(), amps[first].tolist(), phases[first].tolist(),
                             watts[first].tolist(), strict=True):
        t = cell % t_count
        limit = limits.get((a, p, w))
        if limit is None:
            limit = limits[(a, p, w)] = _limits_text(a, p, w)
        texts.append(f"{slots[t][0]}{limit}{slots[t][1]}{ends[t]}")
    pieces = _objects(texts)[code.reshape(n, t_count)]
    until = json.dumps(format_timestamp(valid_until))
    pieces[:, 0] = [f'{{"uuid": {json.dumps(uuid)}, "valid_until": {until}, '
                    f'"valid_for": {valid_for_s}, "limits_root_side": {root_side}, '
                    f'"schedule": [\n  {first_entry}'
                    for uuid, root_side, first_entry in zip(
                        plan.problem.evse_uuids, _root_side(plan), pieces[:, 0], strict=True)]
    pieces[-1, -1] = pieces[-1, -1].removesuffix(ends[-1]) + "]}\n]\n"
    yield "[\n"
    rows = max(1, cells_per_chunk // t_count)
    for start in range(0, n, rows):
        yield "".join(pieces[start : start + rows].ravel().tolist())
