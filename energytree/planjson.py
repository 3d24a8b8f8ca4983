"""A plan as the JSON array of ``EnforcedLimits`` that ``energytree plan`` prints, written fast.

``Plan.enforced_limits`` builds one pydantic object per EVSE and slot, and dumping them takes
many times longer than the solve for a large site (1000 EVSEs × 96 slots is 96 000 entries).
The text here is the same JSON (same fields, order and values, checked by a test), written
from the plan's arrays: each distinct limit and each slot's timestamp and price is formatted
once, put in place with numpy indexing, and the whole text is one string join.
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


def _codes(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A code per row of equal ``columns`` (bit for bit: -0.0 is not 0.0), and one row's
    index for each code."""
    code = np.zeros(columns[0].shape, dtype=np.int64)
    for column in columns:
        bits = column.view(np.int64) if column.dtype == np.float64 else column
        values, inverse = np.unique(bits, return_inverse=True)
        code = code * len(values) + inverse.reshape(column.shape)
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    return inverse.reshape(code.shape), first


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

    Every piece of text is made once and put in its place in one array of strings
    ([EVSE, slot, piece]), which is joined at the end.
    """
    n, t_count = plan.current_a.shape
    if n == 0:
        return "[\n\n]\n"
    amps = floor_towards_zero(plan.current_a, 2).ravel()
    watts = floor_towards_zero(plan.power_w, 1).ravel()
    phases = plan.phases.astype(np.int64).ravel()
    code, first = _codes(amps, phases, watts)
    limits = _objects([_limits_text(float(amps[i]), int(phases[i]), float(watts[i]))
                       for i in first.tolist()])
    slots = _slot_texts(plan)
    until = json.dumps(format_timestamp(valid_until))
    pieces = np.empty((n, t_count, 4), dtype=object)
    pieces[:, :, 0] = _objects([head for head, _ in slots])
    pieces[:, :, 1] = limits[code.reshape(n, t_count)]
    pieces[:, :, 2] = _objects([tail for _, tail in slots])
    pieces[:, :, 3] = ",\n  "
    openings = [f'{{"uuid": {json.dumps(uuid)}, "valid_until": {until}, '
                f'"valid_for": {valid_for_s}, "limits_root_side": {root_side}, '
                '"schedule": [\n  '
                for uuid, root_side in zip(plan.problem.evse_uuids, _root_side(plan),
                                           strict=True)]
    pieces[:, 0, 0] = [opening + head for opening, head in zip(openings, pieces[:, 0, 0],
                                                                strict=True)]
    pieces[:, -1, 3] = "]},\n"
    pieces[-1, -1, 3] = "]}\n]\n"
    return "[\n" + "".join(pieces.ravel().tolist())
