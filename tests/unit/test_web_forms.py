"""The dashboard's target and variable forms: every bad field named, good ones parsed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.web.forms import CarFacts, FormError, parse_target_form, parse_variable_form

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # 13:00 in Berlin
EVSES = ["garage", "carport"]
KNOWN_CAR = CarFacts(40.0, 60.0)


def parse(form: dict[str, object], car: CarFacts = KNOWN_CAR):
    return parse_target_form(form, evses=EVSES, zone=BERLIN, now=NOW, car=lambda _uuid: car)


@pytest.mark.parametrize(("form", "fields"), [
    pytest.param({"uuid": "shed", "energy_kwh": 5}, {"uuid"}, id="unknown-evse"),
    pytest.param({"uuid": "garage"}, {"soc_percent"}, id="neither"),
    pytest.param({"uuid": "garage", "energy_kwh": 5, "soc_percent": 80}, {"energy_kwh"},
                 id="both"),
    pytest.param({"uuid": "garage", "energy_kwh": "five"}, {"energy_kwh"}, id="not-a-number"),
    pytest.param({"uuid": "garage", "energy_kwh": "nan"}, {"energy_kwh"}, id="nan"),
    pytest.param({"uuid": "garage", "energy_kwh": "1e400"}, {"energy_kwh"}, id="infinite"),
    pytest.param({"uuid": "garage", "energy_kwh": -3}, {"energy_kwh"}, id="negative"),
    pytest.param({"uuid": "garage", "energy_kwh": [5]}, {"energy_kwh"}, id="a-list"),
    pytest.param({"uuid": "garage", "soc_percent": 130}, {"soc_percent"}, id="soc-over-100"),
    pytest.param({"uuid": "garage", "soc_percent": 30}, {"soc_percent"}, id="soc-below-car"),
    pytest.param({"uuid": "garage", "energy_kwh": 5, "leave_time": "tomorrow"},
                 {"leave_time"}, id="unreadable-time"),
    pytest.param({"uuid": "garage", "energy_kwh": 5, "leave_time": "2026-11-23T12:30"},
                 {"leave_time"}, id="past-local-time"),
    pytest.param({"uuid": "garage", "energy_kwh": "x", "leave_time": "2020-01-01T00:00"},
                 {"energy_kwh", "leave_time"}, id="every-field-at-once"),
])
def test_bad_target_forms_name_their_fields(form: dict[str, object], fields: set[str]) -> None:
    with pytest.raises(FormError) as caught:
        parse(form)
    assert set(caught.value.fields) == fields


def test_energy_target_with_a_local_leave_time() -> None:
    parsed = parse({"uuid": "garage", "energy_kwh": "12.5", "leave_time": "2026-11-23T18:00"})
    assert parsed.uuid == "garage"
    assert parsed.target is not None
    assert parsed.target.energy_amount_needed == 12.5
    assert parsed.target.leave_time == datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


def test_soc_target_uses_what_the_site_knows_of_the_car() -> None:
    parsed = parse({"uuid": "carport", "soc_percent": 80})
    assert parsed.target is not None
    assert (parsed.target.charge_to_max_percent, parsed.target.car_battery_soc,
            parsed.target.car_battery_capacity_kWh) == (80, 40.0, 60.0)


def test_soc_target_needs_the_cars_state_and_battery() -> None:
    with pytest.raises(FormError) as caught:
        parse({"uuid": "carport", "soc_percent": 80}, CarFacts(None, 60.0))
    assert set(caught.value.fields) == {"current_soc_percent"}
    parsed = parse({"uuid": "carport", "soc_percent": 80, "current_soc_percent": "20"},
                   CarFacts(None, 60.0))
    assert parsed.target is not None and parsed.target.car_battery_soc == 20
    with pytest.raises(FormError, match="battery size"):
        parse({"uuid": "carport", "soc_percent": 80}, CarFacts(20.0, None))


def test_clear_ignores_the_other_fields() -> None:
    assert parse({"uuid": "garage", "clear": True, "energy_kwh": "junk"}).target is None


def test_leave_time_with_an_offset_is_kept() -> None:
    later = (NOW + timedelta(hours=2)).isoformat()
    parsed = parse({"uuid": "garage", "energy_kwh": 5, "leave_time": later})
    assert parsed.target is not None and parsed.target.leave_time == NOW + timedelta(hours=2)


@pytest.mark.parametrize("form", [{}, {"name": " ", "expr": "5"}, {"name": "A", "expr": ""},
                                  {"name": "A", "expr": None}, {"name": "A" * 201, "expr": "1"}])
def test_bad_variable_forms(form: dict[str, object]) -> None:
    with pytest.raises(FormError):
        parse_variable_form(form)


def test_variable_form() -> None:
    assert parse_variable_form({"name": " AVAIL ", "expr": 50}) == ("AVAIL", "50")


JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6)
FIELDS = st.sampled_from(["uuid", "clear", "energy_kwh", "soc_percent", "current_soc_percent",
                          "leave_time", "other"])


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.dictionaries(FIELDS, JSON | st.sampled_from(EVSES), max_size=7))
def test_any_json_form_parses_or_names_its_fields(form: dict[str, object]) -> None:
    """Arbitrary JSON: a valid target, or a FormError whose every field is a form field."""
    try:
        parsed = parse(form)
    except FormError as exc:
        assert exc.fields and set(exc.fields) <= {"uuid", "energy_kwh", "soc_percent",
                                                  "current_soc_percent", "leave_time"}
        return
    assert parsed.uuid in EVSES
    if parsed.target is not None:
        assert parsed.target.leave_time is None or parsed.target.leave_time > NOW


@FUZZ
@given(st.dictionaries(st.sampled_from(["name", "expr", "x"]), JSON, max_size=3))
def test_any_json_variable_form_parses_or_names_its_fields(form: dict[str, object]) -> None:
    try:
        name, expr = parse_variable_form(form)
    except FormError as exc:
        assert set(exc.fields) <= {"name", "expr"}
        return
    assert name and expr
