"""EVerest's energy interface types, with EVerest's JSON field names exactly.

The models follow EVerest's ``types/energy.yaml`` so that energytree can stand in as the energy
manager of a charger stack. Input is lenient where EVerest itself varies: a number may come
plain or in EVerest's ``{"value": …, "source": …}`` form, timestamps may carry any UTC offset
(they are normalised to UTC), and ``EnforcedLimits`` accepts ``valid_until`` (RFC 3339) or
``valid_for`` (seconds). Output is always plain numbers and UTC timestamps with ``Z``.

Extensions (all optional, ignored by EVerest) are marked "energytree extension" below.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

__all__ = [
    "EnergyFlowRequest",
    "EnforcedLimits",
    "EvseState",
    "ExternalLimits",
    "FrequencyWattPoint",
    "LimitsReq",
    "LimitsRes",
    "NodeType",
    "OptimizerTarget",
    "PerPhase",
    "Powermeter",
    "PricePerKwh",
    "ScheduleReqEntry",
    "ScheduleResEntry",
    "ScheduleSetpointEntry",
    "SetpointType",
    "TimedValue",
    "format_timestamp",
    "to_utc",
]

MAX_CHILDREN = 10_000
MAX_SCHEDULE_ENTRIES = 10_000


def _unwrap_number(value: Any) -> Any:
    """Accept EVerest's ``NumberWithSource`` form and keep only the number."""
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


def to_utc(value: Any) -> Any:
    """Parse RFC 3339 with any offset; naive times are rejected rather than guessed."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"not an RFC 3339 timestamp: {value!r}") from exc
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("timestamp needs a UTC offset (e.g. 2026-01-01T12:00:00Z)")
        return value if value.tzinfo is UTC else value.astimezone(UTC)
    return value


def format_timestamp(value: datetime, *, whole_seconds: bool = False) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix and no needless fraction (none at all with
    ``whole_seconds``, as OCPP backends expect)."""
    value = value.astimezone(UTC)
    if whole_seconds:
        value = value.replace(microsecond=0)
    spec = "milliseconds" if value.microsecond else "seconds"
    return value.isoformat(timespec=spec).replace("+00:00", "Z")


Number = Annotated[float, BeforeValidator(_unwrap_number)]
Count = Annotated[int, BeforeValidator(_unwrap_number), Field(ge=0, le=3)]
Timestamp = Annotated[
    datetime, BeforeValidator(to_utc), PlainSerializer(format_timestamp, return_type=str)
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class NodeType(StrEnum):
    """EVerest ``energy-NodeType``."""

    Undefined = "Undefined"
    Evse = "Evse"
    Generic = "Generic"


class EvseState(StrEnum):
    """EVerest ``evse_manager-EvseStateEnum`` as carried in ``evse_state``."""

    Unplugged = "Unplugged"
    WaitForAuth = "WaitForAuth"
    WaitForEnergy = "WaitForEnergy"
    PrepareCharging = "PrepareCharging"
    PausedEV = "PausedEV"
    PausedEVSE = "PausedEVSE"
    Charging = "Charging"
    Finished = "Finished"
    Disabled = "Disabled"


class PerPhase(_Model):
    """One value per grid phase [A]. energytree extension (EVerest's per-phase branch)."""

    L1: Number | None = Field(None, ge=0)
    L2: Number | None = Field(None, ge=0)
    L3: Number | None = Field(None, ge=0)


class LimitsReq(_Model):
    """Limits a node requests (EVSEs to the energy manager); all values positive."""

    total_power_W: Number | None = Field(None, ge=0, description="[W], DC or extra AC limit")
    ac_max_current_A: Number | None = Field(None, ge=0, description="[A] per phase")
    ac_min_current_A: Number | None = Field(None, ge=0, description="[A] per phase")
    ac_max_phase_count: Count | None = None
    ac_min_phase_count: Count | None = None
    ac_supports_changing_phases_during_charging: bool | None = None
    ac_number_of_active_phases: Count | None = None
    ac_max_current_per_phase_A: PerPhase | None = Field(
        None, description="energytree extension: a separate cap per grid phase [A]"
    )


class LimitsRes(_Model):
    """Limits the energy manager grants; negative values mean export."""

    total_power_W: Number | None = None
    ac_max_current_A: Number | None = None
    ac_max_phase_count: Count | None = None


class PricePerKwh(_Model):
    """Price of energy from ``timestamp`` on (EVerest ``PricePerkWh``)."""

    timestamp: Timestamp
    value: Number
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")


class OptimizerTarget(_Model):
    """What the user wants from one EVSE's session."""

    energy_amount_needed: Number | None = Field(None, ge=0, le=10_000,
                                                description="[kWh] by leave_time")
    charge_to_max_percent: Number | None = Field(None, ge=0, le=100,
                                                 description="[%] the SoC to reach")
    car_battery_soc: Number | None = Field(None, ge=0, le=100,
                                           description="[%] the SoC now")
    leave_time: Timestamp | None = Field(None, description="RFC 3339; the energy is due then")
    price_limit: Number | None = Field(None, description="charge whenever price <= this")
    full_autonomy: bool | None = Field(None, description="only locally generated energy")
    car_battery_capacity_kWh: Number | None = Field(
        None, gt=0, le=1_000, description="energytree extension: to turn SoC into energy"
    )


class FrequencyWattPoint(_Model):
    frequency_Hz: Number = Field(gt=0)
    total_power_W: Number


class SetpointType(_Model):
    """One setpoint: positive charges, negative discharges; exactly one kind is set."""

    ac_current_A: Number | None = None
    total_power_W: Number | None = None
    frequency_table: list[FrequencyWattPoint] | None = Field(None, max_length=100)
    priority: int = Field(0, ge=0, le=1000)
    source: str = ""

    @model_validator(mode="after")
    def _one_kind(self) -> SetpointType:
        kinds = [self.ac_current_A, self.total_power_W, self.frequency_table]
        if sum(k is not None for k in kinds) != 1:
            raise ValueError("set exactly one of ac_current_A, total_power_W, frequency_table")
        return self


class ScheduleSetpointEntry(_Model):
    timestamp: Timestamp
    setpoint: SetpointType | None = None


class ScheduleReqEntry(_Model):
    """One entry of a request schedule; applies from ``timestamp`` until the next entry."""

    timestamp: Timestamp
    limits_to_root: LimitsReq
    limits_to_leaves: LimitsReq
    conversion_efficiency: Number | None = Field(None, gt=0, le=1)
    price_per_kwh: PricePerKwh | None = None


class ScheduleResEntry(_Model):
    timestamp: Timestamp
    limits_to_root: LimitsRes
    price_per_kwh: PricePerKwh | None = None


class PhaseValues(_Model):
    """Per-phase measurement as EVerest's powermeter sends it."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    total: Number | None = None
    L1: Number | None = None
    L2: Number | None = None
    L3: Number | None = None
    N: Number | None = None
    DC: Number | None = None


class Powermeter(_Model):
    """The subset of EVerest's ``powermeter-Powermeter`` that energytree reads."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    timestamp: Timestamp | None = None
    meter_id: str | None = None
    energy_Wh_import: PhaseValues | None = None
    energy_Wh_export: PhaseValues | None = None
    power_W: PhaseValues | None = None
    current_A: PhaseValues | None = None
    voltage_V: PhaseValues | None = None
    frequency_Hz: PhaseValues | None = None


class TimedValue(_Model):
    """A timestamped number (used for forecasts): applies from ``timestamp`` on."""

    timestamp: Timestamp
    value: Number


PhaseRotation = Literal["L1L2L3", "L2L3L1", "L3L1L2", "L1L3L2", "L3L2L1", "L2L1L3"]


class EnergyFlowRequest(_Model):
    """A node of the energy tree and everything it asks for (recursive)."""

    uuid: str = Field(min_length=1, max_length=200)
    node_type: NodeType
    children: list[EnergyFlowRequest] = Field(default_factory=list, max_length=MAX_CHILDREN)
    schedule_import: list[ScheduleReqEntry] = Field(max_length=MAX_SCHEDULE_ENTRIES)
    schedule_export: list[ScheduleReqEntry] = Field(
        default_factory=list, max_length=MAX_SCHEDULE_ENTRIES
    )
    schedule_setpoints: list[ScheduleSetpointEntry] = Field(
        default_factory=list, max_length=MAX_SCHEDULE_ENTRIES
    )
    priority_request: bool | None = None
    evse_state: EvseState | None = None
    optimizer_target: OptimizerTarget | None = None
    energy_usage_root: Powermeter | None = None
    energy_usage_leaves: Powermeter | None = None
    phase_rotation: PhaseRotation | None = Field(
        None,
        description="energytree extension: grid phases the EVSE's phases 1, 2, 3 are wired to; "
        "a one-phase EVSE uses the first",
    )
    local_generation_W: list[TimedValue] | None = Field(
        None,
        max_length=MAX_SCHEDULE_ENTRIES,
        description="energytree extension: forecast of locally generated power available "
        "below this node [W], used for full_autonomy targets",
    )

    @field_validator("children")
    @classmethod
    def _unique_uuids(cls, children: list[EnergyFlowRequest]) -> list[EnergyFlowRequest]:
        seen: set[str] = set()
        for child in children:
            if child.uuid in seen:
                raise ValueError(f"duplicate child uuid {child.uuid!r}")
            seen.add(child.uuid)
        return children


class EnforcedLimits(_Model):
    """Limits sent down to one node; after ``valid_until`` the node must stop drawing power."""

    uuid: str = Field(min_length=1, max_length=200)
    valid_until: Timestamp | None = None
    valid_for: int | None = Field(None, ge=0, le=86_400, description="[s]")
    limits_root_side: LimitsRes | None = None
    schedule: list[ScheduleResEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_validity(self) -> EnforcedLimits:
        if self.valid_until is None and self.valid_for is None:
            raise ValueError("set valid_until (RFC 3339) or valid_for (seconds)")
        return self

    def deadline(self, received_at: datetime) -> datetime:
        """When the limit expires, for a receiver that got it at ``received_at``."""
        candidates = []
        if self.valid_until is not None:
            candidates.append(self.valid_until)
        if self.valid_for is not None:
            candidates.append(received_at + timedelta(seconds=self.valid_for))
        return min(candidates)


class ExternalLimits(_Model):
    """Limits imposed on a node from outside (grid operator, OCPP, API)."""

    schedule_import: list[ScheduleReqEntry] = Field(
        default_factory=list, max_length=MAX_SCHEDULE_ENTRIES
    )
    schedule_export: list[ScheduleReqEntry] = Field(
        default_factory=list, max_length=MAX_SCHEDULE_ENTRIES
    )
    schedule_setpoints: list[ScheduleSetpointEntry] = Field(
        default_factory=list, max_length=MAX_SCHEDULE_ENTRIES
    )


EnergyFlowRequest.model_rebuild()
