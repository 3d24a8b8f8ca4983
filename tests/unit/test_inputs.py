"""Reading requests, price files and target files: every problem is a RequestError."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energytree.errors import ConfigError, RequestError
from energytree.inputs import (
    load_prices,
    load_request,
    load_targets,
    parse_json,
    parse_request,
    validate_json,
)
from energytree.site import SiteConfig
from energytree.types import EnergyFlowRequest
from energytree.yamlfile import parse_model
from tests.builders import EXAMPLES, NOW

REQUEST = {"uuid": "a", "node_type": "Evse", "schedule_import": []}


def test_request_from_json(write_file) -> None:
    assert load_request(write_file("r.json", json.dumps(REQUEST))).uuid == "a"


def test_bad_json_gives_line_and_column() -> None:
    with pytest.raises(RequestError, match=r"^r.json:3:23: invalid JSON: Expecting property"):
        parse_request('{\n  "uuid": "a",\n  "node_type": "Evse",,\n}', "r.json")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_rejected(token) -> None:
    text = json.dumps(REQUEST)[:-1] + f', "priority_request": {token}}}'
    with pytest.raises(RequestError, match=f"{token} is not a number"):
        parse_request(text, "r.json")


def test_overflowing_numbers_are_rejected() -> None:
    entry = {"timestamp": "2026-11-23T12:00:00Z", "limits_to_root": {"ac_max_current_A": 0},
             "limits_to_leaves": {}}
    text = json.dumps({**REQUEST, "schedule_import": [entry]}).replace(": 0}", ": 1e999}")
    with pytest.raises(RequestError, match="ac_max_current_A"):
        parse_request(text, "r.json")


def test_validation_errors_name_the_file_and_field() -> None:
    data = {**REQUEST, "schedule_import": [{"timestamp": "2026-11-23T12:00:00",
                                            "limits_to_root": {}, "limits_to_leaves": {}}]}
    with pytest.raises(RequestError, match=r"^r.json: schedule_import.0.timestamp: .*UTC offset"):
        parse_request(json.dumps(data), "r.json")
    with pytest.raises(RequestError, match=r"r.json: \(top level\)"):
        parse_request("[]", "r.json")


def test_unreadable_files(tmp_path) -> None:
    with pytest.raises(RequestError, match="cannot read"):
        load_request(tmp_path / "missing.json")
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"uuid": "\xe9"}')
    with pytest.raises(RequestError, match="not UTF-8"):
        load_request(path)


def test_prices_from_csv(write_file) -> None:
    text = ("timestamp,value,currency\n"
            "2026-11-23T13:00:00+01:00,0.30,\n"
            "2026-11-23T11:00:00Z,0.2,CHF\n")
    prices = load_prices(write_file("p.csv", text))
    assert [p.timestamp for p in prices][1] == NOW, "sorted by time, normalised to UTC"
    assert [(p.value, p.currency) for p in prices] == [(0.2, "CHF"), (0.3, "EUR")]


def test_prices_from_json_list_or_object(write_file) -> None:
    rows = [{"timestamp": "2026-11-23T12:00:00Z", "value": 0.3}]
    assert load_prices(write_file("a.json", json.dumps(rows)))[0].value == 0.3
    wrapped = json.dumps({"prices": rows})
    assert load_prices(write_file("b.json", wrapped))[0].value == 0.3


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("p.csv", "time,value\n1,2\n", "needs 'timestamp' and 'value' columns"),
        ("p.csv", "timestamp,value\n", "no prices"),
        ("p.csv", "timestamp,value\n2026-11-23T12:00:00Z,abc\n",
         r"p.csv: 0.value: Input should be a valid number"),
        ("p.csv", "timestamp,value\n2026-11-23T12:00:00Z,0.1\n2026-11-23,0.2\n",
         r"p.csv: 1.timestamp: .*UTC offset"),
        ("p.csv", "timestamp,value\n2026-11-23T12:00:00Z,nan\n", "finite number"),
        ("p.json", '[{"timestamp": "2026-11-23T12:00:00Z", "value": NaN}]', "NaN"),
        ("p.json", "[]", "no prices"),
        ("p.json", '[{"timestamp": "2026-11-23T12:00:00Z"}]', "0.value: Field required"),
    ],
)
def test_bad_price_files(write_file, name, text, message) -> None:
    with pytest.raises(RequestError, match=message):
        load_prices(write_file(name, text))


def test_targets(write_file) -> None:
    text = '{"a": {"energy_amount_needed": 5, "leave_time": "2026-11-23T18:00:00+01:00"}}'
    targets = load_targets(write_file("t.json", text))
    assert targets["a"].energy_amount_needed == 5
    with pytest.raises(RequestError, match=r"t.json: a.energy_amount_needed"):
        load_targets(write_file("t.json", '{"a": {"energy_amount_needed": -5}}'))


@pytest.mark.parametrize("path", sorted((EXAMPLES / "prices").glob("*")), ids=lambda p: p.name)
def test_example_price_files_load(path) -> None:
    prices = load_prices(path)
    assert len(prices) >= 2


@pytest.mark.parametrize("path", sorted((EXAMPLES / "requests").glob("*.json")),
                         ids=lambda p: p.name)
def test_example_requests_load(path) -> None:
    assert load_request(path).children


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["uuid", "node_type", "children", "schedule_import",
                                       "timestamp", "limits_to_root", "x"]), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | JSON_VALUES.map(json.dumps))
def test_fuzzed_requests_give_only_our_error(text: str) -> None:
    with contextlib.suppress(RequestError):
        parse_request(text, "fuzz.json")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | JSON_VALUES.map(lambda v: json.dumps({"grid": v})))
def test_fuzzed_site_files_give_only_our_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_model(text, SiteConfig, "fuzz.yaml")


def _strict(text: str) -> EnergyFlowRequest | None:
    """The request as the strict path (``json``, then validation) reads it, or None."""
    with contextlib.suppress(RequestError, ValueError):
        return EnergyFlowRequest.model_validate(parse_json(text, "r.json"))
    return None


@pytest.mark.parametrize("path", sorted((EXAMPLES / "requests").glob("*.json")),
                         ids=lambda p: p.name)
def test_fast_path_reads_what_the_strict_path_reads(path) -> None:
    text = path.read_text()
    assert validate_json(EnergyFlowRequest, text) == _strict(text) is not None


@pytest.mark.parametrize("text", [
    json.dumps(REQUEST)[:-1] + ', "energy_usage_root": {"extra": NaN}}',  # dropped, yet refused
    json.dumps(REQUEST)[:-1] + ', "uuid": "\\ud800"}',  # a lone surrogate
    json.dumps(REQUEST)[:-1] + ', "uuid": "b"}',  # of two keys the last counts
])
def test_fast_path_leaves_to_the_strict_path(text) -> None:
    fast = validate_json(EnergyFlowRequest, text)
    assert fast is None or fast == _strict(text)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES.map(json.dumps)
       | JSON_VALUES.map(lambda v: json.dumps({**REQUEST, "children": [v]})))
def test_fast_path_accepts_only_what_the_strict_path_accepts(text: str) -> None:
    fast = validate_json(EnergyFlowRequest, text)
    assert fast is None or fast == _strict(text)
