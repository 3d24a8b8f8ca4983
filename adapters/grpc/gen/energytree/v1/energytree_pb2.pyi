import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PerPhase(_message.Message):
    __slots__ = ("L1", "L2", "L3")
    L1_FIELD_NUMBER: _ClassVar[int]
    L2_FIELD_NUMBER: _ClassVar[int]
    L3_FIELD_NUMBER: _ClassVar[int]
    L1: float
    L2: float
    L3: float
    def __init__(self, L1: _Optional[float] = ..., L2: _Optional[float] = ..., L3: _Optional[float] = ...) -> None: ...

class LimitsReq(_message.Message):
    __slots__ = ("total_power_W", "ac_max_current_A", "ac_min_current_A", "ac_max_phase_count", "ac_min_phase_count", "ac_supports_changing_phases_during_charging", "ac_number_of_active_phases", "ac_max_current_per_phase_A")
    TOTAL_POWER_W_FIELD_NUMBER: _ClassVar[int]
    AC_MAX_CURRENT_A_FIELD_NUMBER: _ClassVar[int]
    AC_MIN_CURRENT_A_FIELD_NUMBER: _ClassVar[int]
    AC_MAX_PHASE_COUNT_FIELD_NUMBER: _ClassVar[int]
    AC_MIN_PHASE_COUNT_FIELD_NUMBER: _ClassVar[int]
    AC_SUPPORTS_CHANGING_PHASES_DURING_CHARGING_FIELD_NUMBER: _ClassVar[int]
    AC_NUMBER_OF_ACTIVE_PHASES_FIELD_NUMBER: _ClassVar[int]
    AC_MAX_CURRENT_PER_PHASE_A_FIELD_NUMBER: _ClassVar[int]
    total_power_W: float
    ac_max_current_A: float
    ac_min_current_A: float
    ac_max_phase_count: int
    ac_min_phase_count: int
    ac_supports_changing_phases_during_charging: bool
    ac_number_of_active_phases: int
    ac_max_current_per_phase_A: PerPhase
    def __init__(self, total_power_W: _Optional[float] = ..., ac_max_current_A: _Optional[float] = ..., ac_min_current_A: _Optional[float] = ..., ac_max_phase_count: _Optional[int] = ..., ac_min_phase_count: _Optional[int] = ..., ac_supports_changing_phases_during_charging: _Optional[bool] = ..., ac_number_of_active_phases: _Optional[int] = ..., ac_max_current_per_phase_A: _Optional[_Union[PerPhase, _Mapping]] = ...) -> None: ...

class LimitsRes(_message.Message):
    __slots__ = ("total_power_W", "ac_max_current_A", "ac_max_phase_count")
    TOTAL_POWER_W_FIELD_NUMBER: _ClassVar[int]
    AC_MAX_CURRENT_A_FIELD_NUMBER: _ClassVar[int]
    AC_MAX_PHASE_COUNT_FIELD_NUMBER: _ClassVar[int]
    total_power_W: float
    ac_max_current_A: float
    ac_max_phase_count: int
    def __init__(self, total_power_W: _Optional[float] = ..., ac_max_current_A: _Optional[float] = ..., ac_max_phase_count: _Optional[int] = ...) -> None: ...

class PricePerKwh(_message.Message):
    __slots__ = ("timestamp", "value", "currency")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    timestamp: _timestamp_pb2.Timestamp
    value: float
    currency: str
    def __init__(self, timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., value: _Optional[float] = ..., currency: _Optional[str] = ...) -> None: ...

class ScheduleReqEntry(_message.Message):
    __slots__ = ("timestamp", "limits_to_root", "limits_to_leaves", "conversion_efficiency", "price_per_kwh")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LIMITS_TO_ROOT_FIELD_NUMBER: _ClassVar[int]
    LIMITS_TO_LEAVES_FIELD_NUMBER: _ClassVar[int]
    CONVERSION_EFFICIENCY_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_KWH_FIELD_NUMBER: _ClassVar[int]
    timestamp: _timestamp_pb2.Timestamp
    limits_to_root: LimitsReq
    limits_to_leaves: LimitsReq
    conversion_efficiency: float
    price_per_kwh: PricePerKwh
    def __init__(self, timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limits_to_root: _Optional[_Union[LimitsReq, _Mapping]] = ..., limits_to_leaves: _Optional[_Union[LimitsReq, _Mapping]] = ..., conversion_efficiency: _Optional[float] = ..., price_per_kwh: _Optional[_Union[PricePerKwh, _Mapping]] = ...) -> None: ...

class ScheduleResEntry(_message.Message):
    __slots__ = ("timestamp", "limits_to_root", "price_per_kwh")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LIMITS_TO_ROOT_FIELD_NUMBER: _ClassVar[int]
    PRICE_PER_KWH_FIELD_NUMBER: _ClassVar[int]
    timestamp: _timestamp_pb2.Timestamp
    limits_to_root: LimitsRes
    price_per_kwh: PricePerKwh
    def __init__(self, timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limits_to_root: _Optional[_Union[LimitsRes, _Mapping]] = ..., price_per_kwh: _Optional[_Union[PricePerKwh, _Mapping]] = ...) -> None: ...

class FrequencyWattPoint(_message.Message):
    __slots__ = ("frequency_Hz", "total_power_W")
    FREQUENCY_HZ_FIELD_NUMBER: _ClassVar[int]
    TOTAL_POWER_W_FIELD_NUMBER: _ClassVar[int]
    frequency_Hz: float
    total_power_W: float
    def __init__(self, frequency_Hz: _Optional[float] = ..., total_power_W: _Optional[float] = ...) -> None: ...

class SetpointType(_message.Message):
    __slots__ = ("ac_current_A", "total_power_W", "frequency_table", "priority", "source")
    AC_CURRENT_A_FIELD_NUMBER: _ClassVar[int]
    TOTAL_POWER_W_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_TABLE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ac_current_A: float
    total_power_W: float
    frequency_table: _containers.RepeatedCompositeFieldContainer[FrequencyWattPoint]
    priority: int
    source: str
    def __init__(self, ac_current_A: _Optional[float] = ..., total_power_W: _Optional[float] = ..., frequency_table: _Optional[_Iterable[_Union[FrequencyWattPoint, _Mapping]]] = ..., priority: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class ScheduleSetpointEntry(_message.Message):
    __slots__ = ("timestamp", "setpoint")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SETPOINT_FIELD_NUMBER: _ClassVar[int]
    timestamp: _timestamp_pb2.Timestamp
    setpoint: SetpointType
    def __init__(self, timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., setpoint: _Optional[_Union[SetpointType, _Mapping]] = ...) -> None: ...

class OptimizerTarget(_message.Message):
    __slots__ = ("energy_amount_needed", "charge_to_max_percent", "car_battery_soc", "leave_time", "price_limit", "full_autonomy", "car_battery_capacity_kWh")
    ENERGY_AMOUNT_NEEDED_FIELD_NUMBER: _ClassVar[int]
    CHARGE_TO_MAX_PERCENT_FIELD_NUMBER: _ClassVar[int]
    CAR_BATTERY_SOC_FIELD_NUMBER: _ClassVar[int]
    LEAVE_TIME_FIELD_NUMBER: _ClassVar[int]
    PRICE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    FULL_AUTONOMY_FIELD_NUMBER: _ClassVar[int]
    CAR_BATTERY_CAPACITY_KWH_FIELD_NUMBER: _ClassVar[int]
    energy_amount_needed: float
    charge_to_max_percent: float
    car_battery_soc: float
    leave_time: _timestamp_pb2.Timestamp
    price_limit: float
    full_autonomy: bool
    car_battery_capacity_kWh: float
    def __init__(self, energy_amount_needed: _Optional[float] = ..., charge_to_max_percent: _Optional[float] = ..., car_battery_soc: _Optional[float] = ..., leave_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., price_limit: _Optional[float] = ..., full_autonomy: _Optional[bool] = ..., car_battery_capacity_kWh: _Optional[float] = ...) -> None: ...

class ExternalLimits(_message.Message):
    __slots__ = ("schedule_import", "schedule_export", "schedule_setpoints")
    SCHEDULE_IMPORT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_EXPORT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_SETPOINTS_FIELD_NUMBER: _ClassVar[int]
    schedule_import: _containers.RepeatedCompositeFieldContainer[ScheduleReqEntry]
    schedule_export: _containers.RepeatedCompositeFieldContainer[ScheduleReqEntry]
    schedule_setpoints: _containers.RepeatedCompositeFieldContainer[ScheduleSetpointEntry]
    def __init__(self, schedule_import: _Optional[_Iterable[_Union[ScheduleReqEntry, _Mapping]]] = ..., schedule_export: _Optional[_Iterable[_Union[ScheduleReqEntry, _Mapping]]] = ..., schedule_setpoints: _Optional[_Iterable[_Union[ScheduleSetpointEntry, _Mapping]]] = ...) -> None: ...

class EnforcedLimits(_message.Message):
    __slots__ = ("uuid", "valid_until", "valid_for", "limits_root_side", "schedule")
    UUID_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    VALID_FOR_FIELD_NUMBER: _ClassVar[int]
    LIMITS_ROOT_SIDE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    valid_until: _timestamp_pb2.Timestamp
    valid_for: int
    limits_root_side: LimitsRes
    schedule: _containers.RepeatedCompositeFieldContainer[ScheduleResEntry]
    def __init__(self, uuid: _Optional[str] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_for: _Optional[int] = ..., limits_root_side: _Optional[_Union[LimitsRes, _Mapping]] = ..., schedule: _Optional[_Iterable[_Union[ScheduleResEntry, _Mapping]]] = ...) -> None: ...

class PhaseValues(_message.Message):
    __slots__ = ("total", "L1", "L2", "L3", "N", "DC")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    L1_FIELD_NUMBER: _ClassVar[int]
    L2_FIELD_NUMBER: _ClassVar[int]
    L3_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    DC_FIELD_NUMBER: _ClassVar[int]
    total: float
    L1: float
    L2: float
    L3: float
    N: float
    DC: float
    def __init__(self, total: _Optional[float] = ..., L1: _Optional[float] = ..., L2: _Optional[float] = ..., L3: _Optional[float] = ..., N: _Optional[float] = ..., DC: _Optional[float] = ...) -> None: ...

class Powermeter(_message.Message):
    __slots__ = ("timestamp", "meter_id", "energy_Wh_import", "energy_Wh_export", "power_W", "current_A", "voltage_V", "frequency_Hz")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    METER_ID_FIELD_NUMBER: _ClassVar[int]
    ENERGY_WH_IMPORT_FIELD_NUMBER: _ClassVar[int]
    ENERGY_WH_EXPORT_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    CURRENT_A_FIELD_NUMBER: _ClassVar[int]
    VOLTAGE_V_FIELD_NUMBER: _ClassVar[int]
    FREQUENCY_HZ_FIELD_NUMBER: _ClassVar[int]
    timestamp: _timestamp_pb2.Timestamp
    meter_id: str
    energy_Wh_import: PhaseValues
    energy_Wh_export: PhaseValues
    power_W: PhaseValues
    current_A: PhaseValues
    voltage_V: PhaseValues
    frequency_Hz: PhaseValues
    def __init__(self, timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., meter_id: _Optional[str] = ..., energy_Wh_import: _Optional[_Union[PhaseValues, _Mapping]] = ..., energy_Wh_export: _Optional[_Union[PhaseValues, _Mapping]] = ..., power_W: _Optional[_Union[PhaseValues, _Mapping]] = ..., current_A: _Optional[_Union[PhaseValues, _Mapping]] = ..., voltage_V: _Optional[_Union[PhaseValues, _Mapping]] = ..., frequency_Hz: _Optional[_Union[PhaseValues, _Mapping]] = ...) -> None: ...

class SubmitOptimizerTargetRequest(_message.Message):
    __slots__ = ("evse_uuid", "target")
    EVSE_UUID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    evse_uuid: str
    target: OptimizerTarget
    def __init__(self, evse_uuid: _Optional[str] = ..., target: _Optional[_Union[OptimizerTarget, _Mapping]] = ...) -> None: ...

class SubmitOptimizerTargetResponse(_message.Message):
    __slots__ = ("plan_id", "plan_version", "reachable", "expected_energy_kWh", "shortfall_kWh", "reason", "planned_at")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    REACHABLE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ENERGY_KWH_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_KWH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PLANNED_AT_FIELD_NUMBER: _ClassVar[int]
    plan_id: str
    plan_version: int
    reachable: bool
    expected_energy_kWh: float
    shortfall_kWh: float
    reason: str
    planned_at: _timestamp_pb2.Timestamp
    def __init__(self, plan_id: _Optional[str] = ..., plan_version: _Optional[int] = ..., reachable: _Optional[bool] = ..., expected_energy_kWh: _Optional[float] = ..., shortfall_kWh: _Optional[float] = ..., reason: _Optional[str] = ..., planned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ClearOptimizerTargetRequest(_message.Message):
    __slots__ = ("evse_uuid",)
    EVSE_UUID_FIELD_NUMBER: _ClassVar[int]
    evse_uuid: str
    def __init__(self, evse_uuid: _Optional[str] = ...) -> None: ...

class ClearOptimizerTargetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetExternalLimitsRequest(_message.Message):
    __slots__ = ("source", "node_uuid", "limits", "ttl_s", "failsafe")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NODE_UUID_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    TTL_S_FIELD_NUMBER: _ClassVar[int]
    FAILSAFE_FIELD_NUMBER: _ClassVar[int]
    source: str
    node_uuid: str
    limits: ExternalLimits
    ttl_s: float
    failsafe: ExternalLimits
    def __init__(self, source: _Optional[str] = ..., node_uuid: _Optional[str] = ..., limits: _Optional[_Union[ExternalLimits, _Mapping]] = ..., ttl_s: _Optional[float] = ..., failsafe: _Optional[_Union[ExternalLimits, _Mapping]] = ...) -> None: ...

class SetExternalLimitsResponse(_message.Message):
    __slots__ = ("expires_at",)
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ClearExternalLimitsRequest(_message.Message):
    __slots__ = ("source",)
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    source: str
    def __init__(self, source: _Optional[str] = ...) -> None: ...

class ClearExternalLimitsResponse(_message.Message):
    __slots__ = ("cleared",)
    CLEARED_FIELD_NUMBER: _ClassVar[int]
    cleared: bool
    def __init__(self, cleared: _Optional[bool] = ...) -> None: ...

class SetPricesRequest(_message.Message):
    __slots__ = ("prices",)
    PRICES_FIELD_NUMBER: _ClassVar[int]
    prices: _containers.RepeatedCompositeFieldContainer[PricePerKwh]
    def __init__(self, prices: _Optional[_Iterable[_Union[PricePerKwh, _Mapping]]] = ...) -> None: ...

class SetPricesResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TargetOverride(_message.Message):
    __slots__ = ("evse_uuid", "target")
    EVSE_UUID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    evse_uuid: str
    target: OptimizerTarget
    def __init__(self, evse_uuid: _Optional[str] = ..., target: _Optional[_Union[OptimizerTarget, _Mapping]] = ...) -> None: ...

class GetPlanRequest(_message.Message):
    __slots__ = ("targets",)
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    targets: _containers.RepeatedCompositeFieldContainer[TargetOverride]
    def __init__(self, targets: _Optional[_Iterable[_Union[TargetOverride, _Mapping]]] = ...) -> None: ...

class EvsePlan(_message.Message):
    __slots__ = ("uuid", "planned_kwh", "shortfall_kwh")
    UUID_FIELD_NUMBER: _ClassVar[int]
    PLANNED_KWH_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_KWH_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    planned_kwh: float
    shortfall_kwh: float
    def __init__(self, uuid: _Optional[str] = ..., planned_kwh: _Optional[float] = ..., shortfall_kwh: _Optional[float] = ...) -> None: ...

class GetPlanResponse(_message.Message):
    __slots__ = ("limits", "evses", "method", "notes", "cost")
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    EVSES_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[EnforcedLimits]
    evses: _containers.RepeatedCompositeFieldContainer[EvsePlan]
    method: str
    notes: _containers.RepeatedScalarFieldContainer[str]
    cost: float
    def __init__(self, limits: _Optional[_Iterable[_Union[EnforcedLimits, _Mapping]]] = ..., evses: _Optional[_Iterable[_Union[EvsePlan, _Mapping]]] = ..., method: _Optional[str] = ..., notes: _Optional[_Iterable[str]] = ..., cost: _Optional[float] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TreeNode(_message.Message):
    __slots__ = ("uuid", "parent_uuid", "node_type", "evse_state", "energy_usage_root")
    UUID_FIELD_NUMBER: _ClassVar[int]
    PARENT_UUID_FIELD_NUMBER: _ClassVar[int]
    NODE_TYPE_FIELD_NUMBER: _ClassVar[int]
    EVSE_STATE_FIELD_NUMBER: _ClassVar[int]
    ENERGY_USAGE_ROOT_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    parent_uuid: str
    node_type: str
    evse_state: str
    energy_usage_root: Powermeter
    def __init__(self, uuid: _Optional[str] = ..., parent_uuid: _Optional[str] = ..., node_type: _Optional[str] = ..., evse_state: _Optional[str] = ..., energy_usage_root: _Optional[_Union[Powermeter, _Mapping]] = ...) -> None: ...

class EvseStatus(_message.Message):
    __slots__ = ("uuid", "state", "current_a", "phases", "power_w", "reason", "target", "planned_kwh", "shortfall_kwh", "drawn_phases", "drawn_w")
    UUID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_A_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PLANNED_KWH_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_KWH_FIELD_NUMBER: _ClassVar[int]
    DRAWN_PHASES_FIELD_NUMBER: _ClassVar[int]
    DRAWN_W_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    state: str
    current_a: float
    phases: int
    power_w: float
    reason: str
    target: OptimizerTarget
    planned_kwh: float
    shortfall_kwh: float
    drawn_phases: int
    drawn_w: float
    def __init__(self, uuid: _Optional[str] = ..., state: _Optional[str] = ..., current_a: _Optional[float] = ..., phases: _Optional[int] = ..., power_w: _Optional[float] = ..., reason: _Optional[str] = ..., target: _Optional[_Union[OptimizerTarget, _Mapping]] = ..., planned_kwh: _Optional[float] = ..., shortfall_kwh: _Optional[float] = ..., drawn_phases: _Optional[int] = ..., drawn_w: _Optional[float] = ...) -> None: ...

class SourceStatus(_message.Message):
    __slots__ = ("source", "node_uuid", "expires_at", "in_failsafe", "binding", "value", "unit", "valid_until")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    NODE_UUID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    IN_FAILSAFE_FIELD_NUMBER: _ClassVar[int]
    BINDING_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    source: str
    node_uuid: str
    expires_at: _timestamp_pb2.Timestamp
    in_failsafe: bool
    binding: bool
    value: float
    unit: str
    valid_until: _timestamp_pb2.Timestamp
    def __init__(self, source: _Optional[str] = ..., node_uuid: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., in_failsafe: _Optional[bool] = ..., binding: _Optional[bool] = ..., value: _Optional[float] = ..., unit: _Optional[str] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GridMeter(_message.Message):
    __slots__ = ("current_a", "power_w", "state")
    CURRENT_A_FIELD_NUMBER: _ClassVar[int]
    POWER_W_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    current_a: _containers.RepeatedScalarFieldContainer[float]
    power_w: float
    state: str
    def __init__(self, current_a: _Optional[_Iterable[float]] = ..., power_w: _Optional[float] = ..., state: _Optional[str] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("now", "evses", "sources", "meter", "plan_method", "plan_notes", "planned_at", "tree", "timezone", "plan_version")
    NOW_FIELD_NUMBER: _ClassVar[int]
    EVSES_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    PLAN_METHOD_FIELD_NUMBER: _ClassVar[int]
    PLAN_NOTES_FIELD_NUMBER: _ClassVar[int]
    PLANNED_AT_FIELD_NUMBER: _ClassVar[int]
    TREE_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    now: _timestamp_pb2.Timestamp
    evses: _containers.RepeatedCompositeFieldContainer[EvseStatus]
    sources: _containers.RepeatedCompositeFieldContainer[SourceStatus]
    meter: GridMeter
    plan_method: str
    plan_notes: _containers.RepeatedScalarFieldContainer[str]
    planned_at: _timestamp_pb2.Timestamp
    tree: _containers.RepeatedCompositeFieldContainer[TreeNode]
    timezone: str
    plan_version: int
    def __init__(self, now: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., evses: _Optional[_Iterable[_Union[EvseStatus, _Mapping]]] = ..., sources: _Optional[_Iterable[_Union[SourceStatus, _Mapping]]] = ..., meter: _Optional[_Union[GridMeter, _Mapping]] = ..., plan_method: _Optional[str] = ..., plan_notes: _Optional[_Iterable[str]] = ..., planned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tree: _Optional[_Iterable[_Union[TreeNode, _Mapping]]] = ..., timezone: _Optional[str] = ..., plan_version: _Optional[int] = ...) -> None: ...

class WatchEnforcedLimitsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchEnforcedLimitsResponse(_message.Message):
    __slots__ = ("limits",)
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[EnforcedLimits]
    def __init__(self, limits: _Optional[_Iterable[_Union[EnforcedLimits, _Mapping]]] = ...) -> None: ...

class Variable(_message.Message):
    __slots__ = ("name", "number", "formula")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    FORMULA_FIELD_NUMBER: _ClassVar[int]
    name: str
    number: float
    formula: str
    def __init__(self, name: _Optional[str] = ..., number: _Optional[float] = ..., formula: _Optional[str] = ...) -> None: ...

class SetVariablesRequest(_message.Message):
    __slots__ = ("vars", "clear", "tmp")
    VARS_FIELD_NUMBER: _ClassVar[int]
    CLEAR_FIELD_NUMBER: _ClassVar[int]
    TMP_FIELD_NUMBER: _ClassVar[int]
    vars: _containers.RepeatedCompositeFieldContainer[Variable]
    clear: bool
    tmp: bool
    def __init__(self, vars: _Optional[_Iterable[_Union[Variable, _Mapping]]] = ..., clear: _Optional[bool] = ..., tmp: _Optional[bool] = ...) -> None: ...

class SetVariablesResponse(_message.Message):
    __slots__ = ("changed",)
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    changed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, changed: _Optional[_Iterable[str]] = ...) -> None: ...

class VariableValue(_message.Message):
    __slots__ = ("name", "number", "formula", "value", "error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    FORMULA_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    number: float
    formula: str
    value: float
    error: str
    def __init__(self, name: _Optional[str] = ..., number: _Optional[float] = ..., formula: _Optional[str] = ..., value: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class GetVariablesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetVariablesResponse(_message.Message):
    __slots__ = ("vars",)
    VARS_FIELD_NUMBER: _ClassVar[int]
    vars: _containers.RepeatedCompositeFieldContainer[VariableValue]
    def __init__(self, vars: _Optional[_Iterable[_Union[VariableValue, _Mapping]]] = ...) -> None: ...

class ReportMeasurementRequest(_message.Message):
    __slots__ = ("evse_uuid", "meter")
    EVSE_UUID_FIELD_NUMBER: _ClassVar[int]
    METER_FIELD_NUMBER: _ClassVar[int]
    evse_uuid: str
    meter: Powermeter
    def __init__(self, evse_uuid: _Optional[str] = ..., meter: _Optional[_Union[Powermeter, _Mapping]] = ...) -> None: ...

class ReportMeasurementResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
