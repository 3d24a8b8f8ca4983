"""EVerest's energy types: lenient input, strict values, plain output."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from energytree.types import (
    EnergyFlowRequest,
    EnforcedLimits,
    LimitsReq,
    LimitsRes,
    PricePerKwh,
    ScheduleReqEntry,
    SetpointType,
    format_timestamp,
    to_utc,
)

NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [16, 16.0, {"value": 16, "source": "fuse"}, {"value": 16.0, "source": ""}],
    ids=["int", "float", "NumberWithSource", "empty source"],
)
def test_numbers_plain_or_with_source(value) -> None:
    lim = LimitsReq.model_validate({"ac_max_current_A": value, "total_power_W": value})
    assert lim.ac_max_current_A == 16.0
    assert lim.total_power_W == 16.0


def test_integer_with_source_for_phase_counts() -> None:
    lim = LimitsReq.model_validate({"ac_max_phase_count": {"value": 1, "source": "evse"}})
    assert lim.ac_max_phase_count == 1
    with pytest.raises(ValidationError):
        LimitsReq.model_validate({"ac_max_phase_count": 4})


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-23T12:00:00Z",
        "2026-11-23T12:00:00z",
        "2026-11-23T12:00:00+00:00",
        "2026-11-23T13:00:00+01:00",
        "2026-11-23T06:30:00-05:30",
        "2026-11-23T12:00:00.000Z",
    ],
)
def test_rfc3339_with_any_offset_becomes_utc(text) -> None:
    value = to_utc(text)
    assert value == NOON and value.tzinfo == UTC


@pytest.mark.parametrize("text", ["2026-11-23T12:00:00", "yesterday", "2026-13-01T00:00:00Z"])
def test_bad_or_naive_timestamps_are_rejected(text) -> None:
    with pytest.raises(ValidationError):
        PricePerKwh.model_validate({"timestamp": text, "value": 0.3})


def test_output_timestamps_are_utc_with_z() -> None:
    price = PricePerKwh.model_validate({"timestamp": "2026-11-23T13:00:00+01:00", "value": 0.3})
    assert price.model_dump(mode="json")["timestamp"] == "2026-11-23T12:00:00Z"
    assert format_timestamp(NOON + timedelta(milliseconds=250)) == "2026-11-23T12:00:00.250Z"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_inf_are_rejected(bad) -> None:
    with pytest.raises(ValidationError):
        LimitsReq(ac_max_current_A=bad)
    with pytest.raises(ValidationError):
        LimitsRes(total_power_W=bad)


def test_nan_in_json_is_rejected() -> None:
    with pytest.raises(ValidationError):
        LimitsReq.model_validate_json('{"ac_max_current_A": NaN}')


def test_negative_request_values_are_rejected_but_results_may_be_negative() -> None:
    with pytest.raises(ValidationError):
        LimitsReq(ac_max_current_A=-1)
    assert LimitsRes(ac_max_current_A=-10).ac_max_current_A == -10  # export


def test_output_is_plain_numbers() -> None:
    res = LimitsRes.model_validate({"ac_max_current_A": {"value": 10, "source": "x"},
                                    "total_power_W": 6900, "ac_max_phase_count": 3})
    assert res.model_dump(mode="json") == {"total_power_W": 6900.0, "ac_max_current_A": 10.0,
                                           "ac_max_phase_count": 3}


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError, match="ac_max_curent_A"):
        LimitsReq.model_validate({"ac_max_curent_A": 16})


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({"ac_current_A": 10}, True),
        ({"total_power_W": -3000}, True),
        ({"frequency_table": [{"frequency_Hz": 50, "total_power_W": 0}]}, True),
        ({}, False),
        ({"ac_current_A": 10, "total_power_W": 3000}, False),
    ],
)
def test_setpoint_sets_exactly_one_kind(fields, ok) -> None:
    if ok:
        SetpointType(**fields)
    else:
        with pytest.raises(ValidationError, match="exactly one"):
            SetpointType(**fields)


def test_enforced_limits_valid_until_or_valid_for() -> None:
    until = EnforcedLimits.model_validate({"uuid": "a", "valid_until": "2026-11-23T12:00:10Z"})
    assert until.valid_until == NOON + timedelta(seconds=10)
    everest = EnforcedLimits.model_validate({"uuid": "a", "valid_for": 10})
    assert everest.deadline(NOON) == NOON + timedelta(seconds=10)
    with pytest.raises(ValidationError, match="valid_until"):
        EnforcedLimits.model_validate({"uuid": "a"})
    with pytest.raises(ValidationError):
        EnforcedLimits.model_validate({"uuid": "a", "valid_for": -1})


def test_enforced_limits_deadline_is_the_earlier_of_both() -> None:
    both = EnforcedLimits(uuid="a", valid_until=NOON + timedelta(seconds=5), valid_for=10)
    assert both.deadline(NOON) == NOON + timedelta(seconds=5)
    assert both.deadline(NOON - timedelta(seconds=60)) == NOON - timedelta(seconds=50)


def test_enforced_limits_output_carries_both() -> None:
    limits = EnforcedLimits(uuid="a", valid_until=NOON, valid_for=10,
                            limits_root_side=LimitsRes(ac_max_current_A=16))
    data = json.loads(limits.model_dump_json(exclude_none=True))
    assert data["valid_until"] == "2026-11-23T12:00:00Z"
    assert data["valid_for"] == 10
    assert data["limits_root_side"] == {"ac_max_current_A": 16.0}


def _evse(uuid: str) -> dict:
    return {"uuid": uuid, "node_type": "Evse", "schedule_import": []}


def test_request_minimal_and_recursive() -> None:
    request = EnergyFlowRequest.model_validate({
        "uuid": "grid", "node_type": "Generic", "schedule_import": [],
        "children": [_evse("a"), _evse("b")],
    })
    assert [c.uuid for c in request.children] == ["a", "b"]
    assert request.schedule_export == [] and request.schedule_setpoints == []


def test_request_rejects_duplicate_children_and_bad_enums() -> None:
    base = {"uuid": "grid", "node_type": "Generic", "schedule_import": []}
    with pytest.raises(ValidationError, match="duplicate child uuid"):
        EnergyFlowRequest.model_validate({**base, "children": [_evse("a"), _evse("a")]})
    with pytest.raises(ValidationError):
        EnergyFlowRequest.model_validate({**base, "node_type": "Fuse"})
    with pytest.raises(ValidationError):
        EnergyFlowRequest.model_validate({**base, "phase_rotation": "L1L1L2"})
    with pytest.raises(ValidationError):
        EnergyFlowRequest.model_validate({**base, "uuid": ""})


def test_conversion_efficiency_bounds() -> None:
    entry = {"timestamp": "2026-11-23T12:00:00Z", "limits_to_root": {}, "limits_to_leaves": {}}
    assert ScheduleReqEntry.model_validate({**entry, "conversion_efficiency": 0.95})
    for bad in (0, 1.2, -0.5):
        with pytest.raises(ValidationError):
            ScheduleReqEntry.model_validate({**entry, "conversion_efficiency": bad})


def test_price_currency_is_iso_4217() -> None:
    assert PricePerKwh(timestamp=NOON, value=0.3).currency == "EUR"
    with pytest.raises(ValidationError):
        PricePerKwh(timestamp=NOON, value=0.3, currency="euro")


def test_json_schema_names_everest_fields() -> None:
    schema = EnergyFlowRequest.model_json_schema()
    props = schema["$defs"]["LimitsReq"]["properties"]
    assert {"total_power_W", "ac_max_current_A", "ac_min_current_A"} <= set(props)
