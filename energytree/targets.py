"""Targets from clients (gRPC, CLI): refused with every problem named, or completed.

A target that cannot mean anything must not be accepted silently: a departure that has passed
would be planned "to the end of the horizon", an empty target would clear the old one, and a
SoC target without a battery capacity would be ignored. ``accept_target`` lists every such
problem at once, each with the field it concerns, so a client can fix all of them in one go;
a target it accepts gets the EVSE's known battery capacity filled in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from energytree.errors import RequestError
from energytree.plan import Plan
from energytree.types import OptimizerTarget, format_timestamp

__all__ = ["FieldViolation", "TargetAnswer", "TargetError", "accept_target", "has_goal",
           "plan_id", "target_answer"]

MET_WITHIN_KWH = 1e-3  # a target short by less than 1 Wh counts as met


@dataclass(frozen=True)
class FieldViolation:
    """One problem with one field (as ``google.rpc.BadRequest.FieldViolation``)."""

    field: str
    description: str


class TargetError(RequestError):
    """A refused target; ``violations`` holds every problem found."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = violations


def has_goal(target: OptimizerTarget | None) -> bool:
    """Whether ``target`` asks for anything; one that only knows the battery bounds the plan."""
    return target is not None and (
        target.energy_amount_needed is not None or target.car_battery_soc is not None
        or target.charge_to_max_percent is not None or target.price_limit is not None
        or bool(target.full_autonomy))


def accept_target(target: OptimizerTarget, now: datetime, evse_uuid: str,
                  battery_kwh: float | None = None, path: str = "target") -> OptimizerTarget:
    """``target`` with the EVSE's ``battery_kwh`` filled in; TargetError if it is unusable."""
    problems: list[FieldViolation] = []
    wants_energy = target.energy_amount_needed is not None
    wants_soc = target.car_battery_soc is not None or target.charge_to_max_percent is not None
    if not has_goal(target):
        problems.append(FieldViolation(
            path, "empty: set energy_amount_needed, car_battery_soc, price_limit or "
            "full_autonomy (ClearOptimizerTarget removes a target)"))
    if target.leave_time is not None and target.leave_time <= now:
        problems.append(FieldViolation(
            f"{path}.leave_time", f"{format_timestamp(target.leave_time)} has passed "
            f"(now is {format_timestamp(now)}); give a future departure"))
    capacity = target.car_battery_capacity_kWh or battery_kwh
    if wants_soc and not wants_energy and capacity is None:
        problems.append(FieldViolation(
            f"{path}.car_battery_capacity_kWh",
            f"needed to turn a SoC into energy: no battery capacity is known for EVSE "
            f"{evse_uuid!r}; give it, or energy_amount_needed instead"))
    if target.car_battery_soc is None and target.charge_to_max_percent is not None \
            and not wants_energy:
        problems.append(FieldViolation(
            f"{path}.car_battery_soc", "needed with charge_to_max_percent: the SoC now [%]"))
    if problems:
        raise TargetError(problems)
    if target.car_battery_capacity_kWh is None and battery_kwh is not None:
        return target.model_copy(update={"car_battery_capacity_kWh": battery_kwh})
    return target


@dataclass(frozen=True)
class TargetAnswer:
    """What a plan promises one EVSE's target."""

    reachable: bool
    expected_kwh: float  # into the car by its leave time
    shortfall_kwh: float
    reason: str


def target_answer(plan: Plan, evse_uuid: str) -> TargetAnswer:
    """The plan's answer to one EVSE's target; out of reach, the reason that holds it back most."""
    e = plan.problem.evse_uuids.index(evse_uuid)
    expected = float(plan.energy_kwh()[e])
    short = float(plan.shortfall_kwh()[e])
    if short <= MET_WITHIN_KWH:
        return TargetAnswer(True, expected, 0.0, plan.reasons[e][0])
    deadline = int(plan.deadlines()[e])
    held = Counter(plan.reasons[e][:deadline]).most_common(1)
    why = held[0][0] if held else "the leave time is before the first slot"
    return TargetAnswer(False, expected, short,
                        f"target not reachable: {short:.2f} kWh short at leave time; {why}")


def plan_id(planned_at: datetime | None, version: int) -> str:
    """A plan's name for clients: when it was made and its version."""
    made = "never" if planned_at is None else format_timestamp(planned_at)
    return f"{made}#{version}"
