"""OCPP 1.6J and 2.0.1 as data: one table row per version, so the adapters are written once.

The rows name what differs on the wire: the websocket subprotocol, the ``ocpp`` library
modules, the snake_case field names the library hands to handlers, the purpose names and the
status enums. Usage::

    version = BY_SUBPROTOCOL[websocket.subprotocol]
    profile_dict = payload[version.profile_field]
    status = version.set_profile_status.accepted
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType, ModuleType
from typing import Any

import ocpp.v16
import ocpp.v201
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16 import datatypes as types16
from ocpp.v16 import enums as enums16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from ocpp.v201 import datatypes as types201
from ocpp.v201 import enums as enums201

__all__ = ["BY_NAME", "BY_SUBPROTOCOL", "V16", "V201", "OcppVersion", "Sample"]


@dataclass(frozen=True)
class OcppVersion:
    """What one OCPP version calls things; everything else is shared code."""

    name: str  # the ``ocpp`` library's version string, "1.6" or "2.0.1"
    subprotocol: str  # Sec-WebSocket-Protocol value
    charge_point_class: type[Any]  # ocpp.v16.ChargePoint / ocpp.v201.ChargePoint
    call: ModuleType
    call_result: ModuleType
    enums: ModuleType
    datatypes: ModuleType
    connector_field: str  # "connector_id" (1.6) / "evse_id" (2.0.1)
    profile_field: str  # SetChargingProfile: "cs_charging_profiles" / "charging_profile"
    profile_id_field: str  # ChargingProfile id: "charging_profile_id" / "id"
    clear_id_field: str  # ClearChargingProfile id: "id" / "charging_profile_id"
    schedules_are_list: bool  # 2.0.1 carries 1..3 ChargingSchedules, 1.6 exactly one
    composite_field: str  # GetCompositeSchedule result: "charging_schedule" / "schedule"
    transaction_id_type: type  # int in 1.6, str (uuid) in 2.0.1
    purposes: MappingProxyType[str, str]  # wire purpose name -> neutral purpose name
    set_profile_status: type[StrEnum]
    clear_profile_status: type[StrEnum]
    composite_status: type[StrEnum]
    registration_status: type[StrEnum]
    connector_status: type[StrEnum]
    status_info: bool  # responses may carry StatusInfo with a reason (2.0.1)
    boot_notification: Callable[[str, str], Any]  # (vendor, model) -> call payload
    status_notification: Callable[[int, str], Any]  # (connector, ISO time) -> call payload
    meter_values: Callable[[int, str, list[Sample]], Any]  # (connector, ISO time, samples)
    station_statuses: tuple[int, ...]  # connectors that report a status: 1.6 also reports 0
    rejects_duplicate_profiles: bool  # same purpose + stack level, other id: 2.0.1 K01.FR.06

    def purpose_to_wire(self, neutral: str) -> str:
        """The wire name of a neutral purpose; raise KeyError if the version lacks it."""
        for wire, name in self.purposes.items():
            if name == neutral:
                return wire
        raise KeyError(f"OCPP {self.name} has no charging profile purpose {neutral!r}")


@dataclass(frozen=True)
class Sample:
    """One measured value for MeterValues: measurand, unit and optional phase (L1..L3)."""

    value: float
    measurand: str  # e.g. "Power.Active.Import"
    unit: str  # "W", "Wh", "A"
    phase: str | None = None


def _sampled_16(s: Sample) -> dict[str, Any]:
    # 1.6 SampledValue: value is a string, "unit" a plain field
    return _sampled(s) | {"value": f"{s.value:.1f}", "unit": s.unit}


def _sampled_201(s: Sample) -> dict[str, Any]:
    # 2.0.1 SampledValueType: value is a number, unit inside UnitOfMeasureType
    return _sampled(s) | {"value": round(s.value, 1), "unit_of_measure": {"unit": s.unit}}


def _sampled(s: Sample) -> dict[str, Any]:
    out = {"measurand": s.measurand, "context": "Sample.Periodic", "location": "Inlet"}
    return out | ({"phase": s.phase} if s.phase else {})


def _meter_values_16(connector: int, at: str, samples: list[Sample]) -> Any:
    values = [{"timestamp": at, "sampled_value": [_sampled_16(s) for s in samples]}]
    return call16.MeterValues(connector_id=connector, meter_value=values)


def _meter_values_201(connector: int, at: str, samples: list[Sample]) -> Any:
    values = [{"timestamp": at, "sampled_value": [_sampled_201(s) for s in samples]}]
    return call201.MeterValues(evse_id=connector, meter_value=values)


def _status_16(connector: int, at: str) -> Any:
    return call16.StatusNotification(
        connector_id=connector, error_code="NoError", status="Available", timestamp=at
    )


def _status_201(connector: int, at: str) -> Any:
    return call201.StatusNotification(
        timestamp=at, connector_status="Available", evse_id=connector, connector_id=1
    )


def _boot_16(vendor: str, model: str) -> Any:
    return call16.BootNotification(charge_point_vendor=vendor, charge_point_model=model)


def _boot_201(vendor: str, model: str) -> Any:
    station = {"vendor_name": vendor, "model": model}
    return call201.BootNotification(charging_station=station, reason="PowerUp")


_COMMON_PURPOSES = {"TxDefaultProfile": "TxDefaultProfile", "TxProfile": "TxProfile"}

V16 = OcppVersion(
    name="1.6",
    subprotocol="ocpp1.6",
    charge_point_class=ocpp.v16.ChargePoint,
    call=call16,
    call_result=result16,
    enums=enums16,
    datatypes=types16,
    connector_field="connector_id",
    profile_field="cs_charging_profiles",
    profile_id_field="charging_profile_id",
    clear_id_field="id",
    schedules_are_list=False,
    composite_field="charging_schedule",
    transaction_id_type=int,
    purposes=MappingProxyType(
        {"ChargePointMaxProfile": "ChargingStationMaxProfile", **_COMMON_PURPOSES}
    ),
    set_profile_status=enums16.ChargingProfileStatus,
    clear_profile_status=enums16.ClearChargingProfileStatus,
    composite_status=enums16.GetCompositeScheduleStatus,
    registration_status=enums16.RegistrationStatus,
    connector_status=enums16.ChargePointStatus,
    status_info=False,
    boot_notification=_boot_16,
    status_notification=_status_16,
    meter_values=_meter_values_16,
    station_statuses=(0, 1),
    rejects_duplicate_profiles=False,
)

V201 = OcppVersion(
    name="2.0.1",
    subprotocol="ocpp2.0.1",
    charge_point_class=ocpp.v201.ChargePoint,
    call=call201,
    call_result=result201,
    enums=enums201,
    datatypes=types201,
    connector_field="evse_id",
    profile_field="charging_profile",
    profile_id_field="id",
    clear_id_field="charging_profile_id",
    schedules_are_list=True,
    composite_field="schedule",
    transaction_id_type=str,
    purposes=MappingProxyType(
        {
            "ChargingStationMaxProfile": "ChargingStationMaxProfile",
            "ChargingStationExternalConstraints": "ChargingStationExternalConstraints",
            **_COMMON_PURPOSES,
        }
    ),
    set_profile_status=enums201.ChargingProfileStatusEnumType,
    clear_profile_status=enums201.ClearChargingProfileStatusEnumType,
    composite_status=enums201.GenericStatusEnumType,
    registration_status=enums201.RegistrationStatusEnumType,
    connector_status=enums201.ConnectorStatusEnumType,
    status_info=True,
    boot_notification=_boot_201,
    status_notification=_status_201,
    meter_values=_meter_values_201,
    station_statuses=(1,),
    rejects_duplicate_profiles=True,
)

BY_NAME: MappingProxyType[str, OcppVersion] = MappingProxyType({"1.6": V16, "2.0.1": V201})
BY_SUBPROTOCOL: MappingProxyType[str, OcppVersion] = MappingProxyType(
    {v.subprotocol: v for v in (V16, V201)}
)


# ---- the CSMS side (adapters.ocpp.csms): what a central system asks chargers and reads ----


@dataclass(frozen=True)
class CsmsWire:
    """What the CSMS side of one version calls things; pairs with its ``OcppVersion`` row.

    ``settings`` maps the neutral names ``max_stack_level``, ``max_periods`` and ``rate_units``
    to the 1.6 configuration key or the 2.0.1 ``Component.Variable``.
    """

    version: OcppVersion
    status_field: str  # StatusNotification: "status" (1.6) / "connector_status" (2.0.1)
    id_info_field: str  # Authorize/StartTransaction answer: "id_tag_info" / "id_token_info"
    settings: MappingProxyType[str, str]
    read_settings: Callable[[Iterable[str]], Any]  # wire names -> GetConfiguration/GetVariables
    setting_values: Callable[[Any], dict[str, str]]  # that call's result -> {wire name: value}
    sample_value: Callable[[Mapping[str, Any]], tuple[Any, str | None, int]]  # value, unit, 10^n


def _read_settings_16(keys: Iterable[str]) -> Any:
    return call16.GetConfiguration(key=list(keys))


def _setting_values_16(result: Any) -> dict[str, str]:
    return {
        k["key"]: k["value"] for k in result.configuration_key or () if k.get("value") is not None
    }


def _read_settings_201(names: Iterable[str]) -> Any:
    data = []
    for name in names:
        component, variable = name.split(".", 1)
        data.append({"component": {"name": component}, "variable": {"name": variable}})
    return call201.GetVariables(get_variable_data=data)


def _setting_values_201(result: Any) -> dict[str, str]:
    return {
        f"{r['component']['name']}.{r['variable']['name']}": r["attribute_value"]
        for r in result.get_variable_result
        if r.get("attribute_status") == "Accepted" and r.get("attribute_value") is not None
    }


def _sample_value_16(sampled: Mapping[str, Any]) -> tuple[Any, str | None, int]:
    return sampled["value"], sampled.get("unit"), 0  # 1.6: a string, unit beside it


def _sample_value_201(sampled: Mapping[str, Any]) -> tuple[Any, str | None, int]:
    unit = sampled.get("unit_of_measure") or {}  # 2.0.1: a number, unit and 10^multiplier
    return sampled["value"], unit.get("unit"), int(unit.get("multiplier", 0))


CSMS16 = CsmsWire(
    version=V16,
    status_field="status",
    id_info_field="id_tag_info",
    settings=MappingProxyType(
        {
            "max_stack_level": "ChargeProfileMaxStackLevel",
            "max_periods": "ChargingScheduleMaxPeriods",
            "rate_units": "ChargingScheduleAllowedChargingRateUnit",
        }
    ),
    read_settings=_read_settings_16,
    setting_values=_setting_values_16,
    sample_value=_sample_value_16,
)

CSMS201 = CsmsWire(
    version=V201,
    status_field="connector_status",
    id_info_field="id_token_info",
    settings=MappingProxyType(
        {
            "max_stack_level": "SmartChargingCtrlr.ProfileStackLevel",
            "max_periods": "SmartChargingCtrlr.PeriodsPerSchedule",
            "rate_units": "SmartChargingCtrlr.RateUnit",
        }
    ),
    read_settings=_read_settings_201,
    setting_values=_setting_values_201,
    sample_value=_sample_value_201,
)

CSMS_BY_SUBPROTOCOL: MappingProxyType[str, CsmsWire] = MappingProxyType(
    {w.version.subprotocol: w for w in (CSMS16, CSMS201)}
)
__all__ += ["CSMS16", "CSMS201", "CSMS_BY_SUBPROTOCOL", "CsmsWire"]


# ---- the per-EVSE gateway (adapters.ocpp.gateway): meter values with a reading context ----


def meter_value(
    version: OcppVersion, at: str, samples: list[Sample], context: str
) -> dict[str, Any]:
    """One MeterValue (timestamp + sampled values) with ``context`` such as Transaction.Begin."""
    sampled = _sampled_16 if version is V16 else _sampled_201
    values = [sampled(s) | {"context": context, "location": "Outlet"} for s in samples]
    return {"timestamp": at, "sampled_value": values}


__all__ += ["meter_value"]
