"""Charging profiles, the store's replace/clear rules and hand-worked composite schedules.

Times are UTC; 2026-11-23 is a Monday. Expected periods are ``(offset s, limit)`` pairs.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.messages import CallResult, validate_payload

from adapters.ocpp.composite import (
    MAX_DURATION_S,
    Transaction,
    composite_payload,
    composite_schedule,
    period_at,
)
from adapters.ocpp.profiles import (
    ChargingProfile,
    ClearCriteria,
    ProfileRules,
    ProfileStore,
    Purpose,
    RateUnit,
    parse_clear,
    parse_profile,
)
from adapters.ocpp.versions import V16, V201, OcppVersion
from energytree.errors import ConfigError, RequestError

MON = datetime(2026, 11, 23, tzinfo=UTC)


def at(hour: float, day: int = 0) -> datetime:
    return MON + timedelta(days=day, hours=hour)


def prof(
    pid: int,
    periods: list[tuple[int, float]] | list[tuple[int, float, int]],
    *,
    purpose: Purpose = Purpose.station_max,
    stack: int = 0,
    kind: str = "Absolute",
    start: datetime | None = MON,
    duration: int | None = None,
    unit: str = "A",
    connector: int = 0,
    recurrency: str | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    tx: str | None = None,
    min_rate: float | None = None,
) -> ChargingProfile:
    """A profile in a line: periods are (start s, limit[, phases])."""
    return ChargingProfile.model_validate(
        {
            "id": pid,
            "connector_id": connector,
            "stack_level": stack,
            "purpose": purpose,
            "kind": kind,
            "recurrency_kind": recurrency,
            "valid_from": valid_from,
            "valid_to": valid_to,
            "transaction_id": tx,
            "schedule": {
                "charging_rate_unit": unit,
                "start_schedule": None if kind == "Relative" else start,
                "duration_s": duration,
                "min_charging_rate": min_rate,
                "periods": [
                    {"start_period_s": p[0], "limit": p[1], "number_phases": (p[2:] or [None])[0]}
                    for p in periods
                ],
            },
        }
    )


def store_of(*profiles: ChargingProfile, active_tx: str | None = None) -> ProfileStore:
    store = ProfileStore()
    for p in profiles:
        store.install(p, active_tx if p.purpose is Purpose.tx else None)
    return store


def limits(store: ProfileStore, start: datetime, hours: float, **kw: Any) -> list[tuple]:
    c = composite_schedule(store, kw.pop("connector", 1), start, int(hours * 3600), **kw)
    return [(p.start_offset_s, p.limit) for p in c.periods]


# ------------------------------------------------------------------ composite: hand-worked
def test_higher_level_leads_only_inside_its_validity_window() -> None:
    store = store_of(
        prof(1, [(0, 32)]),
        prof(2, [(0, 10)], stack=1, valid_from=at(10), valid_to=at(11)),
    )
    assert limits(store, at(9), 3) == [(0, 32), (3600, 10), (7200, 32)]


def test_higher_level_stops_shadowing_when_its_duration_ends() -> None:
    store = store_of(prof(1, [(0, 32)]), prof(2, [(0, 16)], stack=1, start=at(9.5), duration=1800))
    assert limits(store, at(9), 2) == [(0, 32), (1800, 16), (3600, 32)]


def test_lower_level_shows_before_a_higher_absolute_schedule_starts() -> None:
    store = store_of(prof(1, [(0, 32)]), prof(2, [(0, 8), (600, 12)], stack=3, start=at(10)))
    assert limits(store, at(9.5), 1) == [(0, 32), (1800, 8), (2400, 12)]


def test_daily_recurring_across_midnight() -> None:
    night = prof(
        2,
        [(0, 6), (10800, 10)],  # 22:00 → 6 A, 01:00 → 10 A, until 06:00
        purpose=Purpose.tx_default,
        kind="Recurring",
        recurrency="Daily",
        start=at(22, day=-1),
        duration=8 * 3600,
    )
    store = store_of(prof(1, [(0, 32)]), night)
    assert limits(store, at(20), 12) == [(0, 32), (7200, 6), (18000, 10), (36000, 32)]


def test_recurring_defines_nothing_before_its_start_schedule() -> None:
    daily = prof(
        2, [(0, 6)], stack=1, kind="Recurring", recurrency="Daily", start=at(12), duration=3600
    )
    store = store_of(prof(1, [(0, 32)]), daily)
    assert limits(store, at(0), 40) == [(0, 32), (43200, 6), (46800, 32), (129600, 6), (133200, 32)]


def test_weekly_recurring_repeats_after_seven_days() -> None:
    monday = prof(
        2, [(0, 10)], stack=1, kind="Recurring", recurrency="Weekly", start=at(8), duration=7200
    )
    store = store_of(prof(1, [(0, 32)]), monday)
    assert limits(store, at(7, day=7), 4) == [(0, 32), (3600, 10), (10800, 32)]
    assert limits(store, at(7, day=1), 4) == [(0, 32)]


@pytest.mark.parametrize(
    ("transaction", "expected"),
    [
        pytest.param(Transaction(id="T1", start=at(9 + 50 / 60)), [(0, 16), (1200, 8)], id="tx"),
        pytest.param(None, [(0, 16), (1800, 8)], id="no-tx-starts-at-query"),
    ],
)
def test_relative_starts_at_transaction_start(transaction: Transaction | None, expected) -> None:
    relative = prof(
        1, [(0, 16), (1800, 8)], purpose=Purpose.tx_default, kind="Relative", connector=1
    )
    assert limits(store_of(relative), at(10), 1, transaction=transaction) == expected


@pytest.mark.parametrize(
    ("transaction", "expected"),
    [
        pytest.param("T1", [(0, 10), (1800, 16)], id="own-transaction"),
        pytest.param("T2", [(0, 16)], id="other-transaction"),
        pytest.param(None, [(0, 16)], id="no-transaction"),
    ],
)
def test_tx_profile_replaces_tx_default_for_its_transaction(transaction, expected) -> None:
    store = store_of(
        prof(1, [(0, 16)], purpose=Purpose.tx_default),
        prof(2, [(0, 10)], purpose=Purpose.tx, connector=1, start=at(10), duration=1800, tx="T1"),
        active_tx="T1",
    )
    tx = None if transaction is None else Transaction(id=transaction, start=at(9))
    assert limits(store, at(10), 1, transaction=tx) == expected


def test_connector_tx_default_beats_station_wide_at_equal_level() -> None:
    store = store_of(
        prof(1, [(0, 16)], purpose=Purpose.tx_default),
        prof(2, [(0, 20)], purpose=Purpose.tx_default, connector=1),
    )
    assert limits(store, at(10), 1, connector=1) == [(0, 20)]
    assert limits(store, at(10), 1, connector=2) == [(0, 16)]
    assert limits(store, at(10), 1, connector=0) == [(0, 16)]


def test_station_max_and_external_constraints_are_mind_in() -> None:
    store = store_of(
        prof(1, [(0, 20)], purpose=Purpose.tx_default),
        prof(2, [(0, 32), (1800, 16)], start=at(10)),
        prof(3, [(0, 12)], purpose=Purpose.external, start=at(10.75)),
    )
    assert limits(store, at(10), 1) == [(0, 20), (1800, 16), (2700, 12)]


@pytest.mark.parametrize(
    ("periods", "unit", "query", "expected"),
    [
        pytest.param([(0, 16)], "A", "W", 11040.0, id="A-to-W-3ph-default"),
        pytest.param([(0, 16, 1)], "A", "W", 3680.0, id="A-to-W-1ph"),
        pytest.param([(0, 11040)], "W", "A", 16.0, id="W-to-A"),
        pytest.param([(0, 3680, 1)], "W", "A", 16.0, id="W-to-A-1ph"),
    ],
)
def test_unit_conversion(periods, unit, query, expected) -> None:
    store = store_of(prof(1, periods, unit=unit))
    assert limits(store, at(10), 1, unit=query) == [(0, pytest.approx(expected))]


def test_a_queried_in_w_and_back_is_unchanged() -> None:
    store = store_of(prof(1, [(0, 13.3), (600, 7)], unit="A", start=at(10)))
    in_w = composite_schedule(store, 0, at(10), 3600, "W")
    back = store_of(
        prof(9, [(p.start_offset_s, p.limit) for p in in_w.periods], unit="W", start=at(10))
    )
    assert limits(back, at(10), 1, unit="A") == [(0, pytest.approx(13.3)), (600, pytest.approx(7))]


def test_mixed_units_stay_side_by_side_in_limit_periods() -> None:
    store = store_of(
        prof(1, [(0, 16, 1)], purpose=Purpose.tx_default), prof(2, [(0, 11000)], unit="W")
    )
    c = composite_schedule(store, 1, at(10), 3600)
    assert c.unit is RateUnit.A
    # each limit converts with its own phases: 11000 W / (3 × 230 V) ≈ 15.94 A binds
    assert c.periods[0].limit == pytest.approx(11000 / 690)
    (lp,) = c.limit_periods
    assert (lp.current_a, lp.power_w, lp.number_phases) == (16, 11000, 1)
    assert (lp.start, lp.end) == (at(10), at(11))


def test_valid_from_inclusive_valid_to_exclusive() -> None:
    p = prof(1, [(0, 10)], valid_from=at(10), valid_to=at(11))
    assert period_at(p, at(10), at(0)) is not None
    assert period_at(p, at(10) - timedelta(seconds=1), at(0)) is None
    assert period_at(p, at(11) - timedelta(seconds=1), at(0)) is not None
    assert period_at(p, at(11), at(0)) is None


def test_gaps_are_no_limit_and_filled_on_the_wire() -> None:
    store = store_of(prof(1, [(0, 10)], valid_from=at(10), valid_to=at(11)))
    c = composite_schedule(store, 0, at(9.5), 7200)
    assert [(p.start_offset_s, p.limit) for p in c.periods] == [(0, None), (1800, 10), (5400, None)]
    assert [lp.current_a for lp in c.limit_periods] == [None, 10, None]
    wire = composite_payload(V16, c, 0)["charging_schedule"]["charging_schedule_period"]
    assert [(p["start_period"], p["limit"]) for p in wire] == [(0, 48), (1800, 10), (5400, 48)]


def test_min_charging_rate_is_reported() -> None:
    store = store_of(prof(1, [(0, 16)], purpose=Purpose.tx_default, min_rate=6))
    c = composite_schedule(store, 1, at(10), 600)
    assert c.periods[0].min_charging_rate == 6
    assert c.limit_periods[0].min_current_a == 6


def test_bad_duration_is_a_request_error_and_long_ones_are_capped() -> None:
    with pytest.raises(RequestError, match="duration"):
        composite_schedule(ProfileStore(), 0, at(0), 0)
    assert composite_schedule(ProfileStore(), 0, at(0), 10**9).duration_s == MAX_DURATION_S


# ------------------------------------------------------------------ wire payloads
async def _assert_valid_result(version: OcppVersion, payload: dict) -> None:
    result = version.call_result.GetCompositeSchedule(**payload)
    msg = CallResult("1", snake_to_camel_case(remove_nones(serialize_as_dict(result))))
    msg.action = "GetCompositeSchedule"
    await validate_payload(msg, version.name)


@pytest.mark.parametrize("version", [V16, V201], ids=["1.6", "2.0.1"])
async def test_composite_payload_passes_the_library_schema(version: OcppVersion) -> None:
    store = store_of(
        prof(1, [(0, 11000), (900, 7360.55, 3)], unit="W"),
        prof(2, [(0, 6)], purpose=Purpose.tx_default, min_rate=6.04),
    )
    c = composite_schedule(store, 1, at(10), 3600, "A")
    payload = composite_payload(version, c, 1)
    await _assert_valid_result(version, payload)
    body = payload[version.composite_field]
    assert body["charging_rate_unit"] == "A"
    assert [p["limit"] for p in body["charging_schedule_period"]] == [6.0]


def test_v16_limits_are_rounded_down_to_a_tenth() -> None:
    store = store_of(prof(1, [(0, 11000)], unit="W"))
    c = composite_schedule(store, 0, at(10), 60, "A")
    wire = composite_payload(V16, c, 0)["charging_schedule"]["charging_schedule_period"]
    assert wire == [{"start_period": 0, "limit": 15.9}]  # 15.94 A


def test_v201_schedule_fields() -> None:
    c = composite_schedule(store_of(prof(1, [(0, 16)])), 0, at(10, 0), 600)
    payload = composite_payload(V201, c, 0)
    assert payload["schedule"] == {
        "evse_id": 0,
        "duration": 600,
        "schedule_start": "2026-11-23T10:00:00Z",
        "charging_rate_unit": "A",
        "charging_schedule_period": [{"start_period": 0, "limit": 16}],
    }


# ------------------------------------------------------------------ parsing and validation
WIRE16 = {
    "charging_profile_id": 7,
    "stack_level": 1,
    "charging_profile_purpose": "ChargePointMaxProfile",
    "charging_profile_kind": "Absolute",
    "charging_schedule": {
        "charging_rate_unit": "W",
        "start_schedule": "2026-11-23T10:00:00.250Z",
        "min_charging_rate": Decimal("1380.0"),
        "charging_schedule_period": [
            {"start_period": 0, "limit": Decimal("22000.0")},
            {"start_period": 3600, "limit": Decimal("8800.0"), "number_phases": 3},
        ],
    },
}
WIRE201 = {
    "id": 7,
    "stack_level": 1,
    "charging_profile_purpose": "ChargingStationMaxProfile",
    "charging_profile_kind": "Absolute",
    "charging_schedule": [
        {
            "id": 1,
            "charging_rate_unit": "W",
            "start_schedule": "2026-11-23T10:00:00Z",
            "min_charging_rate": 1380.0,
            "charging_schedule_period": [
                {"start_period": 0, "limit": 22000.0},
                {"start_period": 3600, "limit": 8800.0, "number_phases": 3},
            ],
        },
        {
            "id": 2,
            "charging_rate_unit": "A",
            "charging_schedule_period": [{"start_period": 0, "limit": 1.0}],
        },
    ],
}


@pytest.mark.parametrize(("version", "wire"), [(V16, WIRE16), (V201, WIRE201)], ids=["16", "201"])
def test_parse_both_versions_to_the_same_profile(version: OcppVersion, wire: dict) -> None:
    p = parse_profile(version, 0, wire)
    assert p.purpose is Purpose.station_max and p.id == 7 and p.stack_level == 1
    assert p.schedule.start_schedule == at(10)  # sub-seconds dropped
    assert p.schedule.min_charging_rate == 1380.0
    assert [(q.start_period_s, q.limit, q.number_phases) for q in p.schedule.periods] == [
        (0, 22000.0, None),
        (3600, 8800.0, 3),
    ]
    assert isinstance(p.schedule.periods[0].limit, float)


def test_parse_v16_relative_ignores_start_schedule_and_keeps_int_transaction() -> None:
    wire = {
        **WIRE16,
        "charging_profile_purpose": "TxProfile",
        "charging_profile_kind": "Relative",
        "transaction_id": 42,
    }
    p = parse_profile(V16, 1, wire)
    assert p.schedule.start_schedule is None and p.transaction_id == "42"


def _v201(**changes: Any) -> dict:
    schedule = {**WIRE201["charging_schedule"][0], **changes.pop("schedule", {})}
    return {**WIRE201, **changes, "charging_schedule": [schedule]}


@pytest.mark.parametrize(
    ("wire", "evse", "reason"),
    [
        pytest.param(
            _v201(schedule={"charging_schedule_period": [{"start_period": 5, "limit": 1}]}),
            0,
            "K01.FR.31",
            id="first-period-not-0",
        ),
        pytest.param(
            _v201(
                schedule={
                    "charging_schedule_period": [
                        {"start_period": 0, "limit": 1},
                        {"start_period": 0, "limit": 2},
                    ]
                }
            ),
            0,
            "K01.FR.35",
            id="not-increasing",
        ),
        pytest.param(_v201(schedule={"start_schedule": None}), 0, "K01.FR.40", id="no-start"),
        pytest.param(
            _v201(charging_profile_kind="Relative", charging_profile_purpose="TxDefaultProfile"),
            0,
            "K01.FR.41",
            id="relative-with-start",
        ),
        pytest.param(
            _v201(charging_profile_kind="Recurring"),
            0,
            "recurrencyKind",
            id="recurring-without-kind",
        ),
        pytest.param(
            _v201(schedule={"charging_schedule_period": [{"start_period": 0, "limit": -1}]}),
            0,
            "greater than or equal",
            id="negative",
        ),
        pytest.param(
            _v201(
                schedule={"charging_schedule_period": [{"start_period": 0, "limit": float("inf")}]}
            ),
            0,
            "finite",
            id="infinite",
        ),
        pytest.param(
            _v201(
                schedule={
                    "charging_schedule_period": [
                        {"start_period": 0, "limit": 1, "number_phases": 4}
                    ]
                }
            ),
            0,
            "number_phases",
            id="four-phases",
        ),
        pytest.param(WIRE201, 1, "only allowed on connector/EVSE 0", id="station-max-on-evse"),
        pytest.param(
            _v201(charging_profile_purpose="TxProfile", transaction_id="T"),
            0,
            "TxProfile is only allowed on a connector",
            id="tx-on-evse-0",
        ),
        pytest.param(
            _v201(charging_profile_purpose="TxDefaultProfile", transaction_id="T"),
            1,
            "only allowed with TxProfile",
            id="tx-id-on-default",
        ),
        pytest.param(
            _v201(valid_from="2026-11-24T00:00:00Z", valid_to="2026-11-23T00:00:00Z"),
            0,
            "validFrom",
            id="valid-from-after-to",
        ),
        pytest.param(_v201(charging_profile_purpose="Nonsense"), 0, "Nonsense", id="purpose"),
        pytest.param({"id": 1}, 0, "charging_schedule", id="missing-fields"),
        pytest.param({**WIRE201, "charging_schedule": []}, 0, "invalid", id="no-schedule"),
    ],
)
def test_invalid_profiles_are_request_errors(wire: dict, evse: int, reason: str) -> None:
    with pytest.raises(RequestError, match=reason):
        parse_profile(V201, evse, wire)


def test_v16_does_not_know_external_constraints() -> None:
    wire = {**WIRE16, "charging_profile_purpose": "ChargingStationExternalConstraints"}
    with pytest.raises(RequestError):
        parse_profile(V16, 0, wire)


@pytest.mark.parametrize(
    ("rules", "profile", "reason"),
    [
        pytest.param(
            ProfileRules(max_stack_level=2),
            prof(1, [(0, 1)], stack=3),
            "stackLevel",
            id="stack-level",
        ),
        pytest.param(
            ProfileRules(max_periods=1),
            prof(1, [(0, 1), (60, 2)]),
            "periods",
            id="too-many-periods",
        ),
        pytest.param(
            ProfileRules(allowed_units={RateUnit.A}),
            prof(1, [(0, 1)], unit="W"),
            "chargingRateUnit",
            id="unit",
        ),
        pytest.param(
            ProfileRules(supply_phases=1),
            prof(1, [(0, 1, 3)]),
            "numberPhases",
            id="phases-above-supply",
        ),
    ],
)
def test_rules_of_the_station(rules: ProfileRules, profile: ChargingProfile, reason: str) -> None:
    store = ProfileStore(rules)
    with pytest.raises(RequestError, match=reason):
        store.install(profile)
    assert store.profiles == ()


def test_tx_profile_needs_the_active_transaction() -> None:
    tx = prof(1, [(0, 10)], purpose=Purpose.tx, connector=1)
    store = ProfileStore()
    with pytest.raises(RequestError, match="no active transaction"):
        store.install(tx)
    with pytest.raises(RequestError, match="not active"):
        store.install(tx.model_copy(update={"transaction_id": "T9"}), "T1")
    assert store.install(tx, "T1").transaction_id == "T1"
    assert store.clear_transaction("T1") and store.profiles == ()


# ------------------------------------------------------------------ store rules
def test_same_id_replaces() -> None:
    store = store_of(prof(1, [(0, 10)]), prof(1, [(0, 20)], purpose=Purpose.tx_default, stack=4))
    assert [(p.id, p.purpose) for p in store.profiles] == [(1, Purpose.tx_default)]


@pytest.mark.parametrize(
    ("second", "count"),
    [
        pytest.param(prof(2, [(0, 20)]), 1, id="same-purpose-and-level"),
        pytest.param(prof(2, [(0, 20)], stack=1), 2, id="other-level"),
        pytest.param(prof(2, [(0, 20)], purpose=Purpose.tx_default), 2, id="other-purpose"),
        pytest.param(
            prof(2, [(0, 20)], purpose=Purpose.tx_default, connector=1), 2, id="other-connector"
        ),
    ],
)
def test_same_purpose_level_and_connector_replaces(second: ChargingProfile, count: int) -> None:
    first = prof(
        1, [(0, 10)], purpose=Purpose.tx_default if second.connector_id else Purpose.station_max
    )
    store = store_of(first, second)
    assert len(store.profiles) == count and store.profiles[-1] == second


def test_tx_profiles_of_different_transactions_coexist() -> None:
    store = ProfileStore()
    store.install(prof(1, [(0, 10)], purpose=Purpose.tx, connector=1), "T1")
    store.install(prof(2, [(0, 10)], purpose=Purpose.tx, connector=1), "T2")
    assert len(store.profiles) == 2


def test_store_limit_rejects_and_changes_nothing() -> None:
    store = ProfileStore(ProfileRules(max_profiles=2))
    store.install(prof(1, [(0, 10)]))
    store.install(prof(2, [(0, 10)], stack=1))
    with pytest.raises(RequestError, match="maximum"):
        store.install(prof(3, [(0, 10)], stack=2))
    store.install(prof(3, [(0, 5)], stack=1))  # a replacement still fits
    assert [p.id for p in store.profiles] == [1, 3]


def test_external_constraint_is_not_replaced_by_id() -> None:
    store = store_of(prof(1, [(0, 10)], purpose=Purpose.external))
    with pytest.raises(RequestError, match="external"):
        store.install(prof(1, [(0, 20)]))
    assert store.profiles[0].purpose is Purpose.external


def _clear_store() -> ProfileStore:
    return store_of(
        prof(1, [(0, 10)]),
        prof(2, [(0, 10)], purpose=Purpose.tx_default, stack=1),
        prof(3, [(0, 10)], purpose=Purpose.tx_default, stack=2, connector=1),
        prof(4, [(0, 10)], purpose=Purpose.tx_default, stack=1, connector=2),
    )


@pytest.mark.parametrize(
    ("criteria", "left"),
    [
        pytest.param(ClearCriteria(profile_id=2), [1, 3, 4], id="by-id"),
        pytest.param(ClearCriteria(profile_id=2, stack_level=9), [1, 3, 4], id="id-wins"),
        pytest.param(ClearCriteria(purpose=Purpose.tx_default), [1], id="by-purpose"),
        pytest.param(ClearCriteria(stack_level=1), [1, 3], id="by-level"),
        pytest.param(ClearCriteria(connector_id=0), [3, 4], id="by-connector"),
        pytest.param(ClearCriteria(connector_id=2, stack_level=1), [1, 2, 3], id="combined"),
        pytest.param(ClearCriteria(), [], id="all"),
    ],
)
def test_clear_variants(criteria: ClearCriteria, left: list[int]) -> None:
    store = _clear_store()
    assert store.clear(criteria) is True
    assert [p.id for p in store.profiles] == left


def test_clear_without_match_reports_false() -> None:
    store = _clear_store()
    assert store.clear(ClearCriteria(profile_id=99)) is False
    assert store.clear(ClearCriteria(purpose=Purpose.tx)) is False
    assert len(store.profiles) == 4


@pytest.mark.parametrize(
    ("version", "payload", "expected"),
    [
        pytest.param(V16, {"id": 3}, ClearCriteria(profile_id=3), id="16-id"),
        pytest.param(
            V16,
            {
                "connector_id": 0,
                "charging_profile_purpose": "ChargePointMaxProfile",
                "stack_level": 1,
            },
            ClearCriteria(connector_id=0, purpose=Purpose.station_max, stack_level=1),
            id="16-criteria",
        ),
        pytest.param(V201, {"charging_profile_id": 3}, ClearCriteria(profile_id=3), id="201-id"),
        pytest.param(
            V201,
            {
                "charging_profile_criteria": {
                    "evse_id": 1,
                    "charging_profile_purpose": "TxDefaultProfile",
                }
            },
            ClearCriteria(connector_id=1, purpose=Purpose.tx_default),
            id="201-criteria",
        ),
        pytest.param(V201, {}, ClearCriteria(), id="201-all"),
    ],
)
def test_parse_clear(version: OcppVersion, payload: dict, expected: ClearCriteria) -> None:
    assert parse_clear(version, payload) == expected


def test_drop_expired() -> None:
    store = store_of(prof(1, [(0, 10)], valid_to=at(11)), prof(2, [(0, 10)], stack=1))
    assert store.drop_expired(at(10)) is False
    assert store.drop_expired(at(11)) is True
    assert [p.id for p in store.profiles] == [2]


def test_json_round_trip() -> None:
    store = _clear_store()
    store.install(prof(9, [(0, 6)], purpose=Purpose.tx, connector=1, kind="Relative"), "T1")
    again = ProfileStore.from_json(store.to_json())
    assert again.profiles == store.profiles


@pytest.mark.parametrize("text", ["", "{}", '{"profiles": [{"id": 1}]}', "[1"])
def test_unreadable_json_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        ProfileStore.from_json(text)


# ------------------------------------------------------------------ fuzzing the parsers
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


def _mutations(wire: dict) -> st.SearchStrategy[dict]:
    """``wire`` with one field, or one field of its first schedule, replaced by anything."""
    top = st.tuples(st.sampled_from(sorted(wire)), JSON).map(lambda kv: {**wire, kv[0]: kv[1]})
    listed = isinstance(wire["charging_schedule"], list)
    schedule = wire["charging_schedule"][0] if listed else wire["charging_schedule"]

    def in_schedule(kv: tuple[str, Any]) -> dict:
        changed = {**schedule, kv[0]: kv[1]}
        return {**wire, "charging_schedule": [changed] if listed else changed}

    inner = st.tuples(st.sampled_from(sorted(schedule)), JSON).map(in_schedule)
    return top | inner | JSON.filter(lambda x: isinstance(x, dict))


@pytest.mark.parametrize(("version", "wire"), [(V16, WIRE16), (V201, WIRE201)], ids=["16", "201"])
def test_profile_parser_raises_only_request_error(version: OcppVersion, wire: dict) -> None:
    @given(_mutations(wire), st.integers(-2, 3))
    def check(mutated: dict, connector: int) -> None:
        with contextlib.suppress(RequestError):
            parse_profile(version, connector, mutated)

    check()


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "id",
                "connector_id",
                "charging_profile_purpose",
                "stack_level",
                "charging_profile_id",
                "charging_profile_criteria",
            ]
        ),
        JSON,
    )
)
def test_clear_parser_raises_only_request_error(payload: dict) -> None:
    for version in (V16, V201):
        with contextlib.suppress(RequestError):
            parse_clear(version, payload)
