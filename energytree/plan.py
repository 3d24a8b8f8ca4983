"""A plan: per EVSE and slot the granted current, phases and power, why, and what it delivers.

``instant_plan`` builds one slot by slot with the instant allocator (the fallback whenever the
optimiser is absent or fails); ``Plan.enforced_limits`` turns any plan into the
``EnforcedLimits`` sent down the tree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from energytree.allocator import EPS, allocate_slot
from energytree.problem import Problem
from energytree.types import (
    EnforcedLimits,
    LimitsRes,
    PricePerKwh,
    ScheduleResEntry,
)

__all__ = ["BATTERY_FULL", "Plan", "Planner", "floor_towards_zero", "instant_plan",
           "limits_res"]

TARGET_MET = "target met"
AFTER_LEAVE = "after leave time"
AUTONOMY = "full autonomy: local generation"
BATTERY_FULL = "battery full: car_battery_capacity_kWh"


class Planner(Protocol):
    """Turns a problem into a plan (the optimiser, or ``instant_plan``)."""

    def __call__(self, problem: Problem, *, rotation: int = 0) -> Plan: ...


@dataclass(frozen=True)
class Plan:
    """Arrays are ``[evse, slot]``; currents per phase [A] and powers [W] are signed."""

    problem: Problem
    current_a: np.ndarray
    phases: np.ndarray
    power_w: np.ndarray
    reasons: list[list[str]]
    method: str
    notes: list[str] = field(default_factory=list)

    def energy_kwh(self, until_slot: np.ndarray | None = None) -> np.ndarray:
        """Energy into each car [kWh], up to each EVSE's deadline slot by default."""
        p = self.problem
        per_slot = self.power_w * p.grid.hours * p.efficiency / 1000.0
        if until_slot is None:
            until_slot = self.deadlines()
        mask = np.arange(p.slots)[None, :] < until_slot[:, None]
        return (per_slot * mask).sum(axis=1)

    def deadlines(self) -> np.ndarray:
        p = self.problem
        return np.array([t.deadline_slot if t else p.slots for t in p.targets], dtype=np.int64)

    def shortfall_kwh(self) -> np.ndarray:
        """Energy still missing at leave time (0 without a target)."""
        need = np.array([
            t.energy_kwh if t and t.energy_kwh is not None else 0.0 for t in self.problem.targets
        ])
        return np.maximum(0.0, need - self.energy_kwh())

    def cost(self) -> float:
        """Energy cost of the plan at the import prices (unknown prices count as 0)."""
        price = np.nan_to_num(self.problem.price_import)
        energy = self.power_w.clip(min=0) * self.problem.grid.hours / 1000.0
        return float((energy * price).sum())

    def slot_limits(self, evse: int, slot: int) -> LimitsRes:
        return limits_res(self.current_a[evse, slot], self.phases[evse, slot],
                          self.power_w[evse, slot])

    def enforced_limits(self, valid_until: datetime, valid_for_s: int,
                        compress: bool = False) -> list[EnforcedLimits]:
        """One ``EnforcedLimits`` per EVSE in tree order, with the whole planned schedule.

        ``compress`` leaves out entries equal to the one before: an entry applies until the
        next, so the schedule means the same with far fewer entries.
        """
        p = self.problem
        prices = [_price(p, t) for t in range(p.slots)]
        stamps = [p.grid.start_time(t) for t in range(p.slots)]
        amps, watts = floor_towards_zero(self.current_a, 2), floor_towards_zero(self.power_w, 1)
        keep = np.ones(amps.shape, dtype=bool)
        if compress:
            price = np.nan_to_num(p.price_import, nan=-1.0)
            keep[:, 1:] = ((amps[:, 1:] != amps[:, :-1]) | (watts[:, 1:] != watts[:, :-1])
                           | (self.phases[:, 1:] != self.phases[:, :-1])
                           | (price[1:] != price[:-1])[None, :])
        amps_l, watts_l, phases_l = amps.tolist(), watts.tolist(), self.phases.tolist()
        cache: dict[tuple[float, int, float], LimitsRes] = {}
        result = []
        for e, uuid in enumerate(p.evse_uuids):
            schedule = []
            for t in np.nonzero(keep[e])[0].tolist():
                key = (amps_l[e][t], phases_l[e][t], watts_l[e][t])
                res = cache.get(key) or cache.setdefault(key, _res(*key))
                schedule.append(ScheduleResEntry.model_construct(
                    timestamp=stamps[t], limits_to_root=res, price_per_kwh=prices[t]))
            result.append(EnforcedLimits.model_construct(
                uuid=uuid, valid_until=valid_until, valid_for=valid_for_s,
                limits_root_side=self.slot_limits(e, 0), schedule=schedule))
        return result


def floor_towards_zero(values: np.ndarray, digits: int) -> np.ndarray:
    """Round towards zero (vectorised ``_floor``)."""
    scale = 10**digits
    return np.sign(values) * np.floor(np.abs(values) * scale + 1e-6) / scale + 0.0


def _res(amps: float, phases: int, watts: float) -> LimitsRes:
    if abs(amps) <= EPS:
        amps = watts = 0.0
    return LimitsRes.model_construct(ac_max_current_A=amps, total_power_W=watts,
                                     ac_max_phase_count=phases)


def _floor(value: float, digits: int) -> float:
    """Round towards zero so a rounded limit never exceeds the computed one."""
    scale = 10**digits
    return math.copysign(math.floor(abs(value) * scale + 1e-6) / scale, value) + 0.0


def limits_res(current_a: float, phases: int, power_w: float) -> LimitsRes:
    """A granted limit as EVerest's LimitsRes (amps to 0.01 A, watts to 0.1 W)."""
    if abs(current_a) <= EPS:
        current_a = power_w = 0.0
    # values we computed ourselves: finite floats, so skip validation (this runs every tick)
    return LimitsRes.model_construct(
        ac_max_current_A=_floor(float(current_a), 2),
        total_power_W=_floor(float(power_w), 1),
        ac_max_phase_count=int(phases),
    )


def _price(problem: Problem, slot: int) -> PricePerKwh | None:
    value = problem.price_import[slot]
    if np.isnan(value):
        return None
    return PricePerKwh(timestamp=problem.grid.start_time(slot), value=float(value))


def instant_plan(problem: Problem, *, rotation: int = 0) -> Plan:
    """Allocate slot by slot; stop an EVSE once its target energy is delivered.

    A car is gone after its leave time (0 A then), and ``full_autonomy`` EVSEs share only the
    local generation forecast.
    """
    n, t = problem.evse_count, problem.slots
    current = np.zeros((n, t))
    phases = np.zeros((n, t), dtype=np.int64)
    power = np.zeros((n, t))
    reasons = [["" for _ in range(t)] for _ in range(n)]
    remaining = np.minimum(problem.room_kwh, np.array([
        tt.energy_kwh if tt and tt.energy_kwh is not None and tt.price_limit is None else np.inf
        for tt in problem.targets
    ]))
    full_label = np.where(np.isinf([tt.energy_kwh if tt and tt.energy_kwh is not None
                                    else np.inf for tt in problem.targets]),
                          BATTERY_FULL, TARGET_MET)
    deadline = np.array([tt.deadline_slot if tt else t for tt in problem.targets])
    autonomous = np.array([bool(tt and tt.full_autonomy) for tt in problem.targets])
    hours = problem.grid.hours
    for slot in range(t):
        watts_per_amp = problem.voltage_v * problem.max_phases[:, slot]
        per_amp_kwh = watts_per_amp * hours[slot] / 1000.0
        cap = remaining / np.maximum(per_amp_kwh * problem.efficiency[:, slot], 1e-12)
        done = remaining <= 1e-9
        gone = slot >= deadline
        # the last bit of a target may take the minimum current for part of a slot
        cap = np.where(done | gone, 0.0, np.maximum(cap, problem.min_current_a[:, slot]))
        if autonomous.any():
            share = max(0.0, problem.generation_w[slot]) / autonomous.sum()
            cap = np.where(autonomous, np.minimum(cap, share / watts_per_amp), cap)
        alloc = allocate_slot(problem, slot, rotation=rotation + slot, evse_cap_a=cap,
                              evse_cap_label=TARGET_MET)
        current[:, slot] = alloc.current_a
        phases[:, slot] = alloc.phases
        power[:, slot] = alloc.power_w
        delivered = alloc.power_w.clip(min=0) * hours[slot] * problem.efficiency[:, slot] / 1000
        remaining = np.maximum(0.0, remaining - delivered)
        for e in range(n):
            reason = alloc.reasons[e]
            if done[e]:
                reason = str(full_label[e])
            elif gone[e]:
                reason = AFTER_LEAVE
            elif autonomous[e] and reason.startswith(TARGET_MET):
                reason = AUTONOMY
            reasons[e][slot] = reason
    return Plan(problem, current, phases, power, reasons, method="instant allocator",
                notes=list(problem.notes))
