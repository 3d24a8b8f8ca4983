"""Compact builders for requests, trees and problems in tests.

>>> root = node("grid", evse("a"), evse("b"), max_a=32)
>>> alloc(root).current_a          # max-min fair share of 32 A
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from energytree.allocator import SlotAllocation, allocate_slot
from energytree.problem import PlanOptions, Problem, build_problem
from energytree.types import (
    EnergyFlowRequest,
    LimitsReq,
    NodeType,
    OptimizerTarget,
    PerPhase,
    PricePerKwh,
    ScheduleReqEntry,
    ScheduleSetpointEntry,
    SetpointType,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
EXAMPLES = Path(__file__).parents[1] / "examples"


def at(minutes: float = 0.0, start: datetime = NOW) -> datetime:
    """``start`` plus ``minutes``."""
    return start + timedelta(minutes=minutes)


def limits(
    max_a: float | None = None,
    power_w: float | None = None,
    *,
    min_a: float | None = None,
    per_phase: Sequence[float | None] | None = None,
    **fields: Any,
) -> LimitsReq:
    """A LimitsReq: ``max_a`` per phase [A], ``power_w`` [W], ``per_phase`` (L1, L2, L3) [A]."""
    if per_phase is not None:
        fields["ac_max_current_per_phase_A"] = PerPhase(L1=per_phase[0], L2=per_phase[1],
                                                        L3=per_phase[2])
    return LimitsReq(ac_max_current_A=max_a, total_power_W=power_w, ac_min_current_A=min_a,
                     **fields)


def entry(
    when: datetime = NOW,
    max_a: float | None = None,
    power_w: float | None = None,
    *,
    leaves: LimitsReq | None = None,
    efficiency: float | None = None,
    price: float | None = None,
    **root: Any,
) -> ScheduleReqEntry:
    """One schedule entry; keyword arguments go to ``limits_to_root`` (see ``limits``)."""
    return ScheduleReqEntry(
        timestamp=when,
        limits_to_root=limits(max_a, power_w, **root),
        limits_to_leaves=leaves or LimitsReq(),
        conversion_efficiency=efficiency,
        price_per_kwh=None if price is None else PricePerKwh(timestamp=when, value=price),
    )


def evse(
    uuid: str,
    max_a: float | None = 16.0,
    min_a: float | None = 6.0,
    phases: int = 3,
    *,
    power_w: float | None = None,
    per_phase: Sequence[float | None] | None = None,
    rotation: str | None = None,
    switchable: bool = False,
    state: str | None = "Charging",
    target: OptimizerTarget | dict[str, Any] | None = None,
    schedule: list[ScheduleReqEntry] | None = None,
    export: list[ScheduleReqEntry] | None = None,
    setpoints: list[ScheduleSetpointEntry] | None = None,
) -> EnergyFlowRequest:
    """An EVSE leaf with one import entry at NOW (unless ``schedule`` is given)."""
    if schedule is None:
        schedule = [
            entry(
                NOW, max_a, power_w, min_a=min_a, per_phase=per_phase,
                ac_max_phase_count=phases,
                ac_min_phase_count=1 if switchable else phases,
                ac_supports_changing_phases_during_charging=switchable,
            )
        ]
    return EnergyFlowRequest.model_validate({
        "uuid": uuid,
        "node_type": NodeType.Evse,
        "schedule_import": schedule,
        "schedule_export": export or [],
        "schedule_setpoints": setpoints or [],
        "evse_state": state,
        "optimizer_target": target,
        "phase_rotation": rotation,
    })


def node(
    uuid: str,
    *children: EnergyFlowRequest,
    max_a: float | None = None,
    power_w: float | None = None,
    per_phase: Sequence[float | None] | None = None,
    schedule: list[ScheduleReqEntry] | None = None,
    export: list[ScheduleReqEntry] | None = None,
    setpoints: list[ScheduleSetpointEntry] | None = None,
    **fields: Any,
) -> EnergyFlowRequest:
    """A Generic node; without ``schedule`` one entry at NOW with the given caps."""
    if schedule is None:
        schedule = [entry(NOW, max_a, power_w, per_phase=per_phase)]
    return EnergyFlowRequest(
        uuid=uuid,
        node_type=NodeType.Generic,
        children=list(children),
        schedule_import=schedule,
        schedule_export=export or [],
        schedule_setpoints=setpoints or [],
        **fields,
    )


def setpoint(when: datetime = NOW, **fields: Any) -> ScheduleSetpointEntry:
    """A setpoint entry: ``ac_current_A=…``, ``total_power_W=…`` or ``frequency_table=[…]``."""
    return ScheduleSetpointEntry(timestamp=when, setpoint=SetpointType(**fields))


def problem(
    request: EnergyFlowRequest,
    now: datetime = NOW,
    *,
    slot_minutes: float = 15.0,
    horizon_hours: float = 1.0,
    voltage_v: float = 230.0,
    **kwargs: Any,
) -> Problem:
    """``build_problem`` with a short horizon (tests rarely need 24 h)."""
    options = PlanOptions(slot_s=slot_minutes * 60, horizon_s=horizon_hours * 3600,
                          nominal_voltage_v=voltage_v)
    return build_problem(request, now, options, **kwargs)


def alloc(request: EnergyFlowRequest, slot: int = 0, **kwargs: Any) -> SlotAllocation:
    """The instant allocation of slot ``slot`` of a one-hour problem from NOW."""
    return allocate_slot(problem(request), slot, **kwargs)
