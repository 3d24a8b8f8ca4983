"""Protobuf messages of ``energytree.v1`` ↔ energytree types; pure, no I/O.

The energy messages carry the energy types' field names, so one generic walk turns a message
into the dict the pydantic model validates (set fields only; proto3 ``optional`` keeps "unset"
apart from 0) and a model dump back into a message. Validation is the models' own; its errors
become ``RequestError`` naming the field by its path in the request
(``target.energy_amount_needed: Input should be greater than or equal to 0``).
Timestamps are ``google.protobuf.Timestamp`` on the wire and aware UTC datetimes here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, ValidationError

from adapters.grpc.gen.energytree.v1 import energytree_pb2 as pb
from energytree.errors import RequestError
from energytree.leases import SOURCE_NAME_PATTERN
from energytree.plan import Plan
from energytree.status import EvseStatus, MeterFeed, SourceStatus, Status
from energytree.tree import Tree
from energytree.types import (
    EnforcedLimits,
    EvseState,
    ExternalLimits,
    NodeType,
    OptimizerTarget,
    Powermeter,
    PricePerKwh,
)
from energytree.variables import Expr, VariableView

__all__ = [
    "EvsePlan",
    "PlanPreview",
    "SiteStatus",
    "TreeNodeInfo",
    "datetime_to_timestamp",
    "enforced_limits_from_proto",
    "enforced_limits_to_proto",
    "external_limits_from_proto",
    "message_data",
    "model_from_message",
    "model_to_message",
    "plan_from_proto",
    "plan_to_proto",
    "prices_from_proto",
    "required",
    "required_uuid",
    "source_name",
    "status_from_proto",
    "status_to_proto",
    "target_from_proto",
    "targets_from_proto",
    "timestamp_to_datetime",
    "tree_nodes",
    "ttl_from_proto",
    "variable_views_from_proto",
    "variable_views_to_proto",
    "variables_from_proto",
]

Model = TypeVar("Model", bound=BaseModel)
TIMESTAMP = Timestamp.DESCRIPTOR.full_name
MAX_UUID = 200


@dataclass(frozen=True)
class TreeNodeInfo:
    """One node of the tree as GetStatus shows it (depth-first order)."""

    uuid: str
    parent_uuid: str | None
    node_type: NodeType
    evse_state: EvseState | None = None
    energy_usage_root: Powermeter | None = None


@dataclass(frozen=True)
class SiteStatus(Status):
    """The manager's ``Status`` plus the tree with its last measurements."""

    tree: list[TreeNodeInfo] = field(default_factory=list)


@dataclass(frozen=True)
class EvsePlan:
    uuid: str
    planned_kwh: float
    shortfall_kwh: float


@dataclass(frozen=True)
class PlanPreview:
    """A what-if plan: the limits per EVSE with the whole schedule, and what they deliver."""

    limits: list[EnforcedLimits]
    evses: list[EvsePlan]
    method: str
    notes: list[str]
    cost: float


# ---- generic walk ----------------------------------------------------------------------------


def _join(path: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{path}[{name}]"
    return f"{path}.{name}" if path else name


def timestamp_to_datetime(value: Timestamp, path: str) -> datetime:
    try:
        return value.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise RequestError(f"{path}: {exc}") from None


def datetime_to_timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def _value(fd: Any, value: Any, path: str) -> Any:
    if fd.message_type is None:
        return value
    if fd.message_type.full_name == TIMESTAMP:
        return timestamp_to_datetime(value, path)
    return message_data(value, path)


def message_data(message: Message, path: str = "") -> dict[str, Any]:
    """The fields set in ``message`` as a dict (timestamps as datetimes, recursively)."""
    data: dict[str, Any] = {}
    for fd in message.DESCRIPTOR.fields:
        where = _join(path, fd.name)
        value = getattr(message, fd.name)
        if fd.is_repeated:
            if len(value):  # an empty list means "not given": the model's default applies
                data[fd.name] = [_value(fd, x, _join(where, i)) for i, x in enumerate(value)]
        elif not fd.has_presence or message.HasField(fd.name):
            data[fd.name] = _value(fd, value, where)
    return data


def model_from_message(model: type[Model], message: Message, path: str) -> Model:
    """Validate ``message`` as ``model``; errors name the field by its path."""
    try:
        return model.model_validate(message_data(message, path))
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = path
        for part in error["loc"]:
            where = _join(where, part)
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RequestError(f"{where}: {error['msg']}{more}") from None


def _set(message: Message, name: str, value: Any) -> None:
    fd = message.DESCRIPTOR.fields_by_name[name]
    target = getattr(message, name)
    if fd.message_type is None:
        if fd.is_repeated:
            target.extend(value)
        else:
            setattr(message, name, value)
    elif fd.message_type.full_name == TIMESTAMP:
        target.CopyFrom(datetime_to_timestamp(value))
    elif fd.is_repeated:
        for item in value:
            model_to_message(item, target.add())
    else:
        target.SetInParent()  # an empty model is still "set"
        model_to_message(value, target)


def model_to_message(model: BaseModel, message: Message) -> Message:
    """Fill ``message`` from ``model``'s fields that are not None; returns ``message``.

    Reads the attributes rather than a dump, so timestamps keep their microseconds.
    """
    for name in type(model).model_fields:
        value = getattr(model, name)
        if value is not None:
            _set(message, name, value)
    return message


# ---- request fields --------------------------------------------------------------------------


def required_uuid(value: str, path: str) -> str:
    if not value or len(value) > MAX_UUID:
        raise RequestError(f"{path}: give a uuid of 1 to {MAX_UUID} characters")
    return value


def source_name(value: str, path: str = "source") -> str:
    if not re.fullmatch(SOURCE_NAME_PATTERN, value):
        raise RequestError(
            f"{path}: {value!r} is not a source name (1 to 64 letters, digits, '_.:-')")
    return value


def required(message: Message, name: str) -> Any:
    """The message field ``name`` of ``message``; RequestError if it is not set."""
    if not message.HasField(name):
        raise RequestError(f"{name}: required")
    return getattr(message, name)


def target_from_proto(message: pb.OptimizerTarget, path: str = "target") -> OptimizerTarget:
    return model_from_message(OptimizerTarget, message, path)


def targets_from_proto(overrides: Iterable[pb.TargetOverride]
                       ) -> dict[str, OptimizerTarget | None]:
    """GetPlan's what-if targets by EVSE uuid (an unset target means none)."""
    result: dict[str, OptimizerTarget | None] = {}
    for i, item in enumerate(overrides):
        where = f"targets[{i}]"
        uuid = required_uuid(item.evse_uuid, f"{where}.evse_uuid")
        target = None
        if item.HasField("target"):
            target = target_from_proto(item.target, f"{where}.target")
        result[uuid] = target
    return result


def external_limits_from_proto(message: pb.ExternalLimits, path: str) -> ExternalLimits:
    return model_from_message(ExternalLimits, message, path)


def ttl_from_proto(request: pb.SetExternalLimitsRequest) -> float | None:
    if not request.HasField("ttl_s"):
        return None
    ttl = request.ttl_s
    if not math.isfinite(ttl) or ttl <= 0:
        raise RequestError(f"ttl_s: must be a positive number of seconds, got {ttl}")
    return ttl


def prices_from_proto(prices: Sequence[pb.PricePerKwh]) -> list[PricePerKwh]:
    return [model_from_message(PricePerKwh, p, f"prices[{i}]") for i, p in enumerate(prices)]


def variables_from_proto(items: Iterable[pb.Variable]) -> list[tuple[str, Expr]]:
    result: list[tuple[str, Expr]] = []
    for i, item in enumerate(items):
        kind = item.WhichOneof("expr")
        if kind is None:
            raise RequestError(f"vars[{i}]: set number or formula")
        result.append((item.name, item.number if kind == "number" else item.formula))
    return result


# ---- responses -------------------------------------------------------------------------------


def enforced_limits_to_proto(limits: Iterable[EnforcedLimits]) -> list[pb.EnforcedLimits]:
    return [model_to_message(x, pb.EnforcedLimits()) for x in limits]  # type: ignore[misc]


def enforced_limits_from_proto(items: Iterable[pb.EnforcedLimits]) -> list[EnforcedLimits]:
    return [model_from_message(EnforcedLimits, x, f"limits[{i}]") for i, x in enumerate(items)]


def plan_to_proto(plan: Plan, valid_for_s: int) -> pb.GetPlanResponse:
    """A plan as GetPlan answers it; the limits are valid from the plan's start."""
    start = plan.problem.grid.now
    until = datetime.fromtimestamp(start.timestamp() + valid_for_s, UTC)
    planned, short = plan.energy_kwh(), plan.shortfall_kwh()
    evses = [pb.EvsePlan(uuid=node.uuid, planned_kwh=float(planned[e]),
                         shortfall_kwh=float(short[e]))
             for e, node in enumerate(plan.problem.tree.evses)]
    return pb.GetPlanResponse(
        limits=enforced_limits_to_proto(plan.enforced_limits(until, valid_for_s)),
        evses=evses, method=plan.method, notes=list(plan.notes), cost=plan.cost())


def plan_from_proto(message: pb.GetPlanResponse) -> PlanPreview:
    evses = [EvsePlan(x.uuid, x.planned_kwh, x.shortfall_kwh) for x in message.evses]
    return PlanPreview(enforced_limits_from_proto(message.limits), evses, message.method,
                       list(message.notes), message.cost)


def tree_nodes(tree: Tree | None) -> list[TreeNodeInfo]:
    """The nodes of ``tree`` (None: no plan yet) for GetStatus."""
    if tree is None:
        return []
    return [TreeNodeInfo(n.uuid, tree.nodes[n.parent].uuid if n.parent >= 0 else None,
                         n.request.node_type, n.request.evse_state, n.request.energy_usage_root)
            for n in tree.nodes]


def _tree_node_to_proto(node: TreeNodeInfo) -> pb.TreeNode:
    message = pb.TreeNode(uuid=node.uuid, parent_uuid=node.parent_uuid or "",
                          node_type=str(node.node_type))
    if node.evse_state is not None:
        message.evse_state = str(node.evse_state)
    if node.energy_usage_root is not None:
        model_to_message(node.energy_usage_root, message.energy_usage_root)
    return message


def _evse_to_proto(evse: EvseStatus) -> pb.EvseStatus:
    message = pb.EvseStatus(
        uuid=evse.uuid, state=evse.state, current_a=evse.current_a, phases=evse.phases,
        power_w=evse.power_w, reason=evse.reason, planned_kwh=evse.planned_kwh,
        shortfall_kwh=evse.shortfall_kwh, drawn_phases=evse.drawn_phases,
        drawn_w=evse.drawn_w)
    if evse.target is not None:
        model_to_message(evse.target, message.target)
    return message


def _source_to_proto(source: SourceStatus) -> pb.SourceStatus:
    message = pb.SourceStatus(source=source.name, node_uuid=source.node_uuid,
                              in_failsafe=source.in_failsafe, binding=source.binding,
                              value=source.value, unit=source.unit)
    if source.expires_at is not None:
        message.expires_at.CopyFrom(datetime_to_timestamp(source.expires_at))
    if source.valid_until is not None:
        message.valid_until.CopyFrom(datetime_to_timestamp(source.valid_until))
    return message


def status_to_proto(status: Status, tree: Sequence[TreeNodeInfo]) -> pb.GetStatusResponse:
    message = pb.GetStatusResponse(
        now=datetime_to_timestamp(status.now), evses=[_evse_to_proto(x) for x in status.evses],
        sources=[_source_to_proto(x) for x in status.sources], plan_method=status.plan_method,
        plan_notes=list(status.plan_notes), tree=[_tree_node_to_proto(x) for x in tree])
    if status.meter is not None:
        meter = status.meter
        message.meter.CopyFrom(pb.GridMeter(current_a=list(meter.current_a or ()),
                                            power_w=meter.power_w, state=meter.state))
    if status.planned_at is not None:
        message.planned_at.CopyFrom(datetime_to_timestamp(status.planned_at))
    return message


def _optional(message: Message, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def _when(message: Message, name: str) -> datetime | None:
    stamp = _optional(message, name)
    return None if stamp is None else timestamp_to_datetime(stamp, name)


def _evse_from_proto(x: pb.EvseStatus) -> EvseStatus:
    target = None
    if x.HasField("target"):
        target = model_from_message(OptimizerTarget, x.target, "target")
    return EvseStatus(x.uuid, _optional(x, "state"), x.current_a, x.phases, x.power_w,
                      x.reason, target, x.planned_kwh, x.shortfall_kwh,
                      _optional(x, "drawn_phases"), _optional(x, "drawn_w"))


def _tree_node_from_proto(x: pb.TreeNode) -> TreeNodeInfo:
    meter = None
    if x.HasField("energy_usage_root"):
        meter = model_from_message(Powermeter, x.energy_usage_root, "energy_usage_root")
    state = _optional(x, "evse_state")
    return TreeNodeInfo(x.uuid, x.parent_uuid or None, NodeType(x.node_type),
                        None if state is None else EvseState(state), meter)


def status_from_proto(message: pb.GetStatusResponse) -> SiteStatus:
    meter = None
    if message.HasField("meter"):
        m = message.meter
        currents = tuple(m.current_a) if len(m.current_a) == 3 else None
        meter = MeterFeed(currents, _optional(m, "power_w"), m.state)  # type: ignore[arg-type]
    sources = [SourceStatus(x.source, x.node_uuid, _when(x, "expires_at"), x.in_failsafe,
                            x.binding, _optional(x, "value"), x.unit, _when(x, "valid_until"))
               for x in message.sources]
    return SiteStatus(
        now=timestamp_to_datetime(message.now, "now"),
        evses=[_evse_from_proto(x) for x in message.evses], sources=sources, meter=meter,
        plan_method=message.plan_method, plan_notes=list(message.plan_notes),
        planned_at=_when(message, "planned_at"),
        tree=[_tree_node_from_proto(x) for x in message.tree])


def variable_views_to_proto(views: Iterable[VariableView]) -> list[pb.VariableValue]:
    result = []
    for view in views:
        message = pb.VariableValue(name=view.name, value=view.value, error=view.error)
        if isinstance(view.expr, str):
            message.formula = view.expr
        else:
            message.number = float(view.expr)
        result.append(message)
    return result


def variable_views_from_proto(items: Iterable[pb.VariableValue]) -> list[VariableView]:
    return [VariableView(x.name, x.formula if x.WhichOneof("expr") == "formula" else x.number,
                         _optional(x, "value"), _optional(x, "error")) for x in items]
