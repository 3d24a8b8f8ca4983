"""The site file: a person's description of the electrical tree, turned into an EnergyFlowRequest.

A site file names the grid connection, nested fuses or sub-distributions and the EVSEs::

    name: Home
    grid:
      uuid: grid
      max_current_A: 35
      children:
        - evse: wallbox
          max_current_A: 16

Limits may be numbers or formulas (``55000 * CM.AVAIL / 100``); formulas are resolved by the
caller (the live manager evaluates them every tick). Later sections (meter, APIs, OCPP …) are
read by the service; the planning core only needs the tree.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)
from pydantic_core import PydanticCustomError

from energytree.errors import ConfigError, FormulaError
from energytree.formula import Formula, check_evaluable
from energytree.types import (
    EnergyFlowRequest,
    EvseState,
    LimitsReq,
    NodeType,
    OptimizerTarget,
    ScheduleReqEntry,
)

__all__ = ["EvseConfig", "FuseConfig", "GridConfig", "SiteConfig", "site_request"]

def _formula_text(text: str) -> str:
    """A formula that parses and, if it reads nothing live, evaluates; an error if not."""
    try:
        check_evaluable(Formula.parse(text))
    except FormulaError as exc:
        raise PydanticCustomError("formula", "formula {text}: {problem}",
                                  {"text": repr(text), "problem": str(exc)}) from None
    return text


def _number_or_formula(value: object) -> object:
    """Checks formula texts where the file is read, so errors name its line and field."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            _formula_text(value)
    return value


def _not_negative(value: float | str) -> float | str:
    """A limit of a negative number makes no sense (a formula is checked when evaluated)."""
    if isinstance(value, float | int) and value < 0:
        raise ValueError(f"must not be negative (got {value:g}); 0 blocks the node")
    return value


FormulaText = Annotated[str, AfterValidator(_formula_text)]
Limit = Annotated[float | str, Field(union_mode="left_to_right"),
                  BeforeValidator(_number_or_formula), AfterValidator(_not_negative)]

Resolver = Callable[[str], float | None]
PhaseRotation = Literal["L1L2L3", "L2L3L1", "L3L1L2", "L1L3L2", "L3L2L1", "L2L1L3"]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _NodeLimits(_Config):
    max_current_A: Limit | None = Field(None, description="per phase [A], or a formula")
    max_power_W: Limit | None = Field(None, description="[W], or a formula")
    max_export_current_A: float = Field(0.0, ge=0, description="per phase [A]; 0 = no export")
    max_export_power_W: float | None = Field(None, ge=0, description="[W]; none: no own limit")
    phases: int = Field(3, ge=1, le=3, description="the phases wired to this node")


class EvseConfig(_NodeLimits):
    """One charging point (a leaf of the tree)."""

    evse: str = Field(min_length=1, max_length=200, description="the EVSE's uuid")
    min_current_A: float = Field(6.0, ge=0, le=80,
                                description="[A] below this the EVSE pauses (IEC 61851: 6 A)")
    max_current_A: Limit | None = Field(16.0, description="per phase [A], or a formula")
    phase_rotation: PhaseRotation = Field(
        "L1L2L3", description="the grid phases the EVSE's L1, L2, L3 are wired to; a one-phase "
        "EVSE on L2 is phases: 1 with L2L3L1")
    phase_switching: bool = Field(False, description="may switch between 1 and 3 phases")
    min_phases: int = Field(1, ge=1, le=3, description="fewest phases when switching")
    conversion_efficiency: float = Field(1.0, gt=0, le=1,
                                         description="energy in the car ÷ energy drawn")
    battery_kWh: float | None = Field(
        None, gt=0, le=1000, description="[kWh] the car's capacity: turns SoC targets into "
        "energy and bounds the plan even without a target; none: planned as if the car took "
        "everything offered (the plan notes say so)")
    state: EvseState | None = Field(None, description="initial state (simulation, planning)")
    charging_rule: FormulaText | None = Field(
        None, max_length=2000,
        description="cFos charging rule: a formula giving the current in mA, e.g. "
        "'CM.TARIF == 1 ? 16000 : 6000'; evaluated every tick",
    )
    target: OptimizerTarget | None = Field(None, description="what the user wants from this "
                                                        "EVSE's session (EVerest OptimizerTarget)")


class FuseConfig(_NodeLimits):
    """A fuse, sub-distribution or any other node that limits the EVSEs below it."""

    fuse: str = Field(min_length=1, max_length=200, description="the node's uuid")
    children: list[Child] = Field(default_factory=list, description="fuses and EVSEs below")


def _child_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return "evse" if "evse" in value else "fuse" if "fuse" in value else None
    return "evse" if isinstance(value, EvseConfig) else "fuse"


Child = Annotated[
    Annotated[EvseConfig, Tag("evse")] | Annotated[FuseConfig, Tag("fuse")],
    Discriminator(
        _child_kind,
        custom_error_type="node_kind",
        custom_error_message="each child needs an 'evse: <uuid>' or a 'fuse: <uuid>' key",
    ),
]


class GridConfig(_NodeLimits):
    """The grid connection: the root of the tree."""

    uuid: str = Field("grid", min_length=1, max_length=200, description="the root's uuid")
    children: list[Child] = Field(default_factory=list, description="fuses and EVSEs below")


class SiteConfig(_Config):
    """The planning part of a site file; the service adds its own sections."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    name: str = Field("site", description="shown in output")
    timezone: str = Field("UTC", description="local time for formulas, tariffs and output")
    nominal_voltage_V: float = Field(230.0, gt=0, le=1000,
                                     description="[V] converts A per phase to W")
    slot_minutes: float = Field(15.0, gt=0, le=1440, description="the planning grid's step")
    horizon_hours: float = Field(24.0, gt=0, le=24 * 7, description="how far a plan looks")
    grid: GridConfig = Field(description="the grid connection: the root of the tree")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r} (use e.g. Europe/Berlin)") from None
        return zone


FuseConfig.model_rebuild()
GridConfig.model_rebuild()


def _resolve(value: Limit | None, resolve: Resolver | None, where: str) -> float | None:
    """A limit's value; a formula goes to ``resolve`` (None there = applied elsewhere, live)."""
    if value is None or isinstance(value, float | int):
        return value
    if resolve is None:
        raise ConfigError(f"{where}: formula {value!r} needs the live manager to evaluate it")
    return resolve(value)


def _limits(node: _NodeLimits, resolve: Resolver | None, where: str) -> LimitsReq:
    return LimitsReq(
        ac_max_current_A=_resolve(node.max_current_A, resolve, f"{where}.max_current_A"),
        total_power_W=_resolve(node.max_power_W, resolve, f"{where}.max_power_W"),
        ac_max_phase_count=node.phases,
    )


def _entry(now: datetime, root: LimitsReq, leaves: LimitsReq | None = None,
           efficiency: float | None = None) -> list[ScheduleReqEntry]:
    return [
        ScheduleReqEntry(
            timestamp=now,
            limits_to_root=root,
            limits_to_leaves=leaves or LimitsReq(),
            conversion_efficiency=efficiency,
        )
    ]


def _export(node: _NodeLimits, now: datetime) -> list[ScheduleReqEntry]:
    limits = LimitsReq(
        ac_max_current_A=node.max_export_current_A, total_power_W=node.max_export_power_W
    )
    return _entry(now, limits)


def _evse_request(evse: EvseConfig, now: datetime, resolve: Resolver | None) -> EnergyFlowRequest:
    where = f"evse {evse.evse}"
    own = _limits(evse, resolve, where)
    root = own.model_copy(
        update={
            "ac_min_current_A": evse.min_current_A,
            "ac_min_phase_count": evse.min_phases if evse.phase_switching else evse.phases,
            "ac_supports_changing_phases_during_charging": evse.phase_switching,
        }
    )
    target = evse.target
    if target and evse.battery_kWh and target.car_battery_capacity_kWh is None:
        target = target.model_copy(update={"car_battery_capacity_kWh": evse.battery_kWh})
    elif target is None and evse.battery_kWh:  # no goal, but the battery bounds the plan
        target = OptimizerTarget(car_battery_capacity_kWh=evse.battery_kWh)
    efficiency = None if evse.conversion_efficiency == 1.0 else evse.conversion_efficiency
    return EnergyFlowRequest(
        uuid=evse.evse,
        node_type=NodeType.Evse,
        schedule_import=_entry(now, root, efficiency=efficiency),
        schedule_export=_export(evse, now),
        evse_state=evse.state,
        optimizer_target=target,
        phase_rotation=evse.phase_rotation,
    )


def _node_request(
    uuid: str, node: FuseConfig | GridConfig, now: datetime, resolve: Resolver | None
) -> EnergyFlowRequest:
    children = [
        _evse_request(c, now, resolve)
        if isinstance(c, EvseConfig)
        else _node_request(c.fuse, c, now, resolve)
        for c in node.children
    ]
    return EnergyFlowRequest(
        uuid=uuid,
        node_type=NodeType.Generic,
        children=children,
        schedule_import=_entry(now, _limits(node, resolve, f"node {uuid}")),
        schedule_export=_export(node, now),
    )


def site_request(
    site: SiteConfig, now: datetime, resolve: Resolver | None = None
) -> EnergyFlowRequest:
    """The EnergyFlowRequest a site file describes, with limits valid from ``now``."""
    return _node_request(site.grid.uuid, site.grid, now, resolve)


def evse_configs(site: SiteConfig) -> list[EvseConfig]:
    """Every EVSE of the site in tree order."""
    found: list[EvseConfig] = []

    def walk(node: FuseConfig | GridConfig) -> None:
        for child in node.children:
            if isinstance(child, EvseConfig):
                found.append(child)
            else:
                walk(child)

    walk(site.grid)
    return found
