"""A plan as the JSON array of ``EnforcedLimits`` that ``energytree plan`` prints, written fast.

``Plan.enforced_limits`` builds one pydantic object per EVSE and slot, and dumping them takes
many times longer than the solve for a large site (1000 EVSEs × 96 slots is 96 000 entries).
The text here is the same JSON (same fields, order and values, checked by a test), written
from the plan's arrays: each distinct limit and each slot's timestamp and price is formatted
once, and an entry is one string join.
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


def enforced_limits_json(plan: Plan, valid_until: datetime, valid_for_s: int) -> str:
    """The whole plan, one ``EnforcedLimits`` per EVSE in tree order, as JSON text."""
    amps = floor_towards_zero(plan.current_a, 2).tolist()
    watts = floor_towards_zero(plan.power_w, 1).tolist()
    phases = plan.phases.tolist()
    slots = _slot_texts(plan)
    until = json.dumps(format_timestamp(valid_until))
    cache: dict[tuple[float, int, float], str] = {}
    objects = []
    for e, uuid in enumerate(plan.problem.evse_uuids):
        entries = []
        for (head, tail), key in zip(slots, zip(amps[e], phases[e], watts[e], strict=True),
                                     strict=True):
            limits = cache.get(key) or cache.setdefault(key, _limits_text(*key))
            entries.append(f"{head}{limits}{tail}")
        now = plan.slot_limits(e, 0)
        root_side = _limits_text(now.ac_max_current_A or 0.0, now.ac_max_phase_count or 0,
                                 now.total_power_W or 0.0)
        objects.append(
            f'{{"uuid": {json.dumps(uuid)}, "valid_until": {until}, "valid_for": {valid_for_s},'
            f' "limits_root_side": {root_side}, "schedule": [\n  ' + ",\n  ".join(entries)
            + "]}")
    return "[\n" + ",\n".join(objects) + "\n]\n"
