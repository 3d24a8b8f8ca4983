"""Pure charger translations (``chargers``, ``charger_limits``): uuids, credentials, states,
meter values, push decisions, profiles and offline pins."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.messages import Call, _validate_payload
from pydantic import ValidationError
from websockets.datastructures import Headers

from adapters.ocpp.charger_limits import (
    CLOCK_SKEW_S,
    PROFILE_ID_BASE,
    Grant,
    Pushed,
    charger_rules,
    dump_pushed,
    floor_01,
    grant_for,
    lease_end,
    load_pushed,
    needs_push,
    offline_limits,
    set_profile_call,
    tx_default_profile,
)
from adapters.ocpp.chargers import (
    ChargerConfig,
    CsmsConfig,
    charger_id,
    connectors_in,
    credentials_ok,
    ended_state,
    evse_state,
    evse_uuid,
    offline_source,
    powermeter,
    register_reading,
)
from adapters.ocpp.profiles import ProfileRules, RateUnit, parse_profile
from adapters.ocpp.versions import CSMS16, CSMS201, CsmsWire
from energytree.errors import ConfigError, RequestError
from energytree.types import EnforcedLimits, EvseState, LimitsRes

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WIRES = pytest.mark.parametrize("wire", [CSMS16, CSMS201], ids=["1.6", "2.0.1"])
CONFIG = CsmsConfig(heartbeat_interval_s=60, lease_heartbeats=3)
A = ChargerConfig(id="A")
B = ChargerConfig(id="B", connectors={1: "garage", 2: "street"}, failsafe_current_a=10)
AMPS = ProfileRules(max_stack_level=4, max_periods=8, allowed_units=frozenset({RateUnit.A}))


# ---- config and uuids ----------------------------------------------------------------------


def test_evse_uuid_from_config_else_derived() -> None:
    assert (evse_uuid(B, 1), evse_uuid(B, 3), evse_uuid(A, 2)) == ("garage", "B-3", "A-2")


def test_connectors_in_configured_and_derived() -> None:
    uuids = ["A-1", "A-2", "A-0", "A-x", "AB-1", "B-1", "B-4", "garage"]
    assert connectors_in(A, uuids) == [1, 2]
    assert connectors_in(B, uuids) == [1, 2, 4]  # "B-1" is not B's: connector 1 is "garage"


@pytest.mark.parametrize(
    "charger",
    [{"id": "A:1"}, {"id": ""}, {"id": "A", "connectors": {0: "x"}},
     {"id": "A", "connectors": {1: "x", 2: "x"}}],
    ids=["colon in id", "empty id", "connector 0", "same uuid twice"],
)
def test_charger_config_rejects(charger: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ChargerConfig.model_validate(charger)


def test_csms_config_defaults_and_checks() -> None:
    assert (CONFIG.host, CONFIG.lease_s) == ("127.0.0.1", 180.0)
    assert (CONFIG.failsafe_a(A), CONFIG.failsafe_a(B)) == (6.0, 10.0)
    with pytest.raises(ValidationError):
        CsmsConfig(chargers=[A, ChargerConfig(id="A")])


# ---- status → EvseState --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "in_tx", "state"),
    [
        ("Available", False, EvseState.Unplugged),
        ("Preparing", False, EvseState.WaitForAuth),
        ("Preparing", True, EvseState.PrepareCharging),
        ("Charging", True, EvseState.Charging),
        ("SuspendedEVSE", True, EvseState.PausedEVSE),
        ("SuspendedEV", True, EvseState.PausedEV),
        ("Finishing", False, EvseState.Finished),
        ("Faulted", False, EvseState.Disabled),
        ("Occupied", False, EvseState.WaitForAuth),
        ("Occupied", True, None),
        ("EVConnected", True, EvseState.PrepareCharging),
        ("Idle", True, EvseState.Unplugged),
    ],
)
def test_evse_state(status: str, in_tx: bool, state: EvseState | None) -> None:
    assert evse_state(status, in_tx) == state


def test_unknown_status_is_a_request_error() -> None:
    with pytest.raises(RequestError, match="Exploded"):
        evse_state("Exploded", False)


def test_ended_state() -> None:
    assert ended_state("EVDisconnected") is EvseState.Unplugged
    assert ended_state(None, "EVDeparted") is EvseState.Unplugged
    assert ended_state("Local", "StopAuthorized") is EvseState.Finished


# ---- MeterValues → Powermeter --------------------------------------------------------------


def sampled(wire: CsmsWire, value: float | str, measurand: str | None = None,
            unit: str | None = None, phase: str | None = None, multiplier: int = 0,
            **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value, **extra}
    if measurand:
        out["measurand"] = measurand
    if phase:
        out["phase"] = phase
    if wire is CSMS16:
        out["value"] = str(value)
        if unit:
            out["unit"] = unit
    elif unit or multiplier:
        out["unit_of_measure"] = {"unit": unit or "Wh", "multiplier": multiplier}
    return out


@WIRES
def test_powermeter_units_phases_and_newest(wire: CsmsWire) -> None:
    newest = [
        sampled(wire, 12.5, unit="kWh"),  # no measurand: the energy register
        sampled(wire, 7.36, "Power.Active.Import", "kW"),
        sampled(wire, 10.0, "Current.Import", "A", "L1-N"),
        sampled(wire, 11.0, "Current.Import", "A", "L2"),
        sampled(wire, 1.0, "Current.Import", "A", "N"),  # neutral: skipped
        sampled(wire, 50.0, "Frequency"),  # not ours: skipped
        sampled(wire, 99.0, "Power.Active.Import", "W", format="SignedData"),
    ]
    values = [
        {"timestamp": "2026-11-23T11:59:00Z", "sampled_value": [sampled(wire, 1.0)]},
        {"timestamp": "2026-11-23T12:00:00Z", "sampled_value": newest},
    ]
    reading = powermeter(wire, values, "A/1")
    assert reading is not None and reading.timestamp == NOW and reading.meter_id == "A/1"
    assert reading.energy_Wh_import is not None and reading.energy_Wh_import.total == 12_500
    assert reading.power_W is not None and reading.power_W.total == pytest.approx(7360)
    assert reading.current_A is not None
    assert (reading.current_A.L1, reading.current_A.L2, reading.current_A.L3) == (10, 11, None)


def test_powermeter_201_multiplier_and_power_from_phases() -> None:
    samples = [sampled(CSMS201, 2.3, "Power.Active.Import", "W", p, multiplier=3)
               for p in ("L1", "L2", "L3")]
    reading = powermeter(CSMS201, [{"timestamp": "2026-11-23T12:00:00Z",
                                    "sampled_value": samples}], "B/1")
    assert reading is not None and reading.power_W is not None
    assert (reading.power_W.L1, reading.power_W.total) == pytest.approx((2300, 6900))


@WIRES
@pytest.mark.parametrize("value", ["five", "nan", "inf"])
def test_powermeter_rejects_non_numbers(wire: CsmsWire, value: str) -> None:
    values = [{"timestamp": "2026-11-23T12:00:00Z",
               "sampled_value": [{**sampled(wire, 1.0), "value": value}]}]
    with pytest.raises(RequestError):
        powermeter(wire, values, "A/1")


@WIRES
def test_powermeter_without_usable_samples(wire: CsmsWire) -> None:
    assert powermeter(wire, [], "A/1") is None
    values = [{"timestamp": "2026-11-23T12:00:00Z",
               "sampled_value": [sampled(wire, 5.0, "Energy.Reactive.Import.Register")]}]
    assert powermeter(wire, values, "A/1") is None


def test_register_reading() -> None:
    reading = register_reading(1234, "2026-11-23T12:00:00+01:00", "A/1")
    assert reading.timestamp == NOW - timedelta(hours=1)
    assert reading.energy_Wh_import is not None and reading.energy_Wh_import.total == 1234
    with pytest.raises(RequestError):
        register_reading(1, "yesterday", "A/1")


# ---- EnforcedLimits → grant → push decision ------------------------------------------------


def limits(amps: float | None, watts: float | None = None, phases: int | None = 3
           ) -> EnforcedLimits:
    res = LimitsRes(ac_max_current_A=amps, total_power_W=watts, ac_max_phase_count=phases)
    return EnforcedLimits(uuid="A-1", valid_until=NOW, limits_root_side=res)


@pytest.mark.parametrize(
    ("given", "grant"),
    [
        (limits(16.0, 11_040.0), Grant(16.0, 3)),
        (limits(16.0, 4_600.0), Grant(6.6, 3)),  # 4600 W / (3 × 230 V) = 6.67 A, floored
        (limits(None, 3_680.0, 1), Grant(16.0, 1)),
        (limits(7.36), Grant(7.3, 3)),
        (limits(-10.0, -6_900.0), Grant(0.0, 3)),  # export: OCPP AC profiles cannot ask for it
        (limits(None, None), Grant(0.0, 3)),
        (EnforcedLimits(uuid="A-1", valid_for=10), Grant(0.0)),
    ],
    ids=["amps", "watts bind", "watts only", "floor", "export", "nothing", "no limits"],
)
def test_grant_for(given: EnforcedLimits, grant: Grant) -> None:
    assert grant_for(given, 230.0) == grant


def test_floor_01_never_rounds_up() -> None:
    assert (floor_01(7.36), floor_01(7.3), floor_01(0.09), floor_01(11_040.0)) == (
        7.3, 7.3, 0.0, 11_040.0)


def pushed(amps: float, phases: int | None = 3, at: datetime = NOW) -> Pushed:
    return Pushed(Grant(amps, phases), at, at + timedelta(seconds=CONFIG.lease_s), 0)


@pytest.mark.parametrize(
    ("last", "grant", "now", "push"),
    [
        (None, Grant(6.0, 3), NOW, True),
        (pushed(16.0), Grant(16.0, 3), NOW, False),
        (pushed(6.0), Grant(6.4, 3), NOW, False),  # within 0.5 A
        (pushed(6.0), Grant(6.6, 3), NOW, True),
        (pushed(32.0), Grant(30.5, 3), NOW, False),  # within 5 % of 32 A = 1.6 A
        (pushed(32.0), Grant(30.3, 3), NOW, True),
        (pushed(0.0), Grant(0.3, 3), NOW, True),  # resume: never held back
        (pushed(0.4), Grant(0.0, 3), NOW, True),  # pause: never held back
        (pushed(16.0), Grant(16.0, 1), NOW, True),  # phases changed
        (pushed(16.0), Grant(16.0, 3), NOW + timedelta(seconds=119), False),
        (pushed(16.0), Grant(16.0, 3), NOW + timedelta(seconds=120), True),  # 1/3 lease left
        (Pushed(Grant(16.0, 3), NOW, None, 0), Grant(16.0, 3), NOW + timedelta(days=9), False),
    ],
)
def test_needs_push(last: Pushed | None, grant: Grant, now: datetime, push: bool) -> None:
    assert needs_push(last, grant, now, 0.5, 5.0) is push


# ---- what the charger advertises, and the profile ------------------------------------------


@pytest.mark.parametrize(
    ("wire", "values", "rules"),
    [
        (CSMS16, {"ChargeProfileMaxStackLevel": "8", "ChargingScheduleMaxPeriods": "24",
                  "ChargingScheduleAllowedChargingRateUnit": "Current,Power"},
         (8, 24, {RateUnit.A, RateUnit.W})),
        (CSMS201, {"SmartChargingCtrlr.ProfileStackLevel": "3",
                   "SmartChargingCtrlr.PeriodsPerSchedule": "2",
                   "SmartChargingCtrlr.RateUnit": "W"}, (3, 2, {RateUnit.W})),
        (CSMS16, {}, (0, 1, {RateUnit.A})),
        (CSMS16, {"ChargeProfileMaxStackLevel": "lots",
                  "ChargingScheduleAllowedChargingRateUnit": "Volts"}, (0, 1, {RateUnit.A})),
    ],
    ids=["1.6", "2.0.1 watts only", "nothing known", "garbage"],
)
def test_charger_rules(wire: CsmsWire, values: dict[str, str], rules: tuple[Any, ...]) -> None:
    got = charger_rules(wire, values)
    assert (got.max_stack_level, got.max_periods, set(got.allowed_units)) == rules


def profile(grant: Grant, rules: ProfileRules = AMPS, connector: int = 1) -> Any:
    return tx_default_profile(connector, grant, rules, NOW + timedelta(microseconds=5),
                              stack_level=rules.max_stack_level, failsafe_a=6.0,
                              lease_s=CONFIG.lease_s, voltage_v=230.0)


def test_profile_in_amps_drops_to_failsafe_when_the_lease_ends() -> None:
    p = profile(Grant(16.0, 3))
    assert (p.id, p.connector_id, p.stack_level, p.purpose) == (
        PROFILE_ID_BASE + 1, 1, 4, "TxDefaultProfile")
    assert p.schedule.start_schedule == NOW - timedelta(seconds=CLOCK_SKEW_S)
    assert [(q.start_period_s, q.limit, q.number_phases) for q in p.schedule.periods] == [
        (0, 16.0, 3), (CLOCK_SKEW_S + 180, 6.0, 3)]
    assert p.valid_to is None and lease_end(p) == NOW + timedelta(seconds=180)


def test_profile_in_watts_when_the_charger_has_no_amps() -> None:
    watts = ProfileRules(max_stack_level=0, max_periods=1, allowed_units=frozenset({RateUnit.W}))
    p = profile(Grant(16.0, 3), watts)
    assert p.schedule.charging_rate_unit is RateUnit.W
    assert [q.limit for q in p.schedule.periods] == [11_040.0]  # one period: no failsafe tail
    assert lease_end(p) is None


@WIRES
@pytest.mark.parametrize("grant", [Grant(7.3, 1), Grant(0.0, None), Grant(31.9, 3)])
def test_set_profile_call_is_valid_and_parses_back(wire: CsmsWire, grant: Grant) -> None:
    v = wire.version
    p = profile(grant, connector=2)
    request = set_profile_call(v, p)
    payload = remove_nones(snake_to_camel_case(serialize_as_dict(request)))
    _validate_payload(Call("1", "SetChargingProfile", payload), v.name)  # the library's schema
    assert getattr(request, v.connector_field) == 2
    assert parse_profile(v, 2, getattr(request, v.profile_field)) == p


# ---- offline pins ----------------------------------------------------------------------------


def pins(given: Any) -> list[tuple[datetime, float | None, float | None]]:
    return [(e.timestamp, e.limits_to_root.ac_min_current_A, e.limits_to_root.ac_max_current_A)
            for e in given.schedule_import]


def test_offline_limits_pin_last_limit_then_failsafe() -> None:
    last = pushed(16.0)
    assert offline_limits(None, 6.0, NOW) is None  # never accepted: limit unknown
    assert pins(offline_limits(last, 6.0, NOW)) == [
        (NOW, 16.0, 16.0), (NOW + timedelta(seconds=180), 6.0, 6.0)]
    later = NOW + timedelta(seconds=500)
    assert pins(offline_limits(last, 6.0, later)) == [(later, 6.0, 6.0)]
    forever = Pushed(Grant(10.0, 3), NOW, None, 0)
    assert pins(offline_limits(forever, 6.0, later)) == [(later, 10.0, 10.0)]


# ---- handshake helpers of the server ---------------------------------------------------------


def basic(user: str, password: str) -> Headers:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return Headers({"Authorization": f"Basic {token}"})


def test_charger_id_is_the_last_path_segment() -> None:
    assert charger_id("/ocpp/CP%2A1/?x=1") == "CP*1"
    assert charger_id("/A") == "A"


def test_credentials() -> None:
    locked = ChargerConfig(id="A", password="s3cret")
    assert credentials_ok(locked, basic("A", "s3cret"))
    assert not credentials_ok(locked, basic("A", "wrong"))
    assert not credentials_ok(locked, basic("B", "s3cret"))  # user must be the charger id
    assert not credentials_ok(locked, Headers({"Authorization": "Bearer x"}))
    assert not credentials_ok(locked, Headers())
    assert not credentials_ok(None, basic("Z", "s3cret"))  # not on the allow-list
    assert credentials_ok(A, Headers())  # no password configured: none needed


def test_offline_source_is_a_valid_lease_name() -> None:
    assert offline_source("A-1") == "offline:A-1"
    odd = offline_source("Garage Wallbox/links")
    assert odd.startswith("offline:") and len(odd) == len("offline:") + 16


def test_pushed_state_round_trip() -> None:
    state = {"A-1": pushed(16.0), "garage": Pushed(Grant(6.0, None), NOW, None, 2)}
    assert load_pushed(dump_pushed(state)) == state
    with pytest.raises(ConfigError):
        load_pushed({"A-1": {"current_a": 16}})
    with pytest.raises(ConfigError):
        load_pushed([1, 2])
