"""Reading requests, price files and target files: every problem is a RequestError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from energytree.errors import RequestError
from energytree.inputs import load_prices, load_request, load_targets, parse_request
from tests.builders import NOW

EXAMPLES = Path(__file__).parents[2] / "examples"
REQUEST = {"uuid": "a", "node_type": "Evse", "schedule_import": []}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_request_from_json(tmp_path) -> None:
    assert load_request(_write(tmp_path, "r.json", json.dumps(REQUEST))).uuid == "a"


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


def test_prices_from_csv(tmp_path) -> None:
    text = ("timestamp,value,currency\n"
            "2026-11-23T13:00:00+01:00,0.30,\n"
            "2026-11-23T11:00:00Z,0.2,CHF\n")
    prices = load_prices(_write(tmp_path, "p.csv", text))
    assert [p.timestamp for p in prices][1] == NOW, "sorted by time, normalised to UTC"
    assert [(p.value, p.currency) for p in prices] == [(0.2, "CHF"), (0.3, "EUR")]


def test_prices_from_json_list_or_object(tmp_path) -> None:
    rows = [{"timestamp": "2026-11-23T12:00:00Z", "value": 0.3}]
    assert load_prices(_write(tmp_path, "a.json", json.dumps(rows)))[0].value == 0.3
    wrapped = json.dumps({"prices": rows})
    assert load_prices(_write(tmp_path, "b.json", wrapped))[0].value == 0.3


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("p.csv", "time,value\n1,2\n", "needs 'timestamp' and 'value' columns"),
        ("p.csv", "timestamp,value\n", "no prices"),
        ("p.csv", "timestamp,value\n2026-11-23T12:00:00Z,abc\n", "0.value"),
        ("p.csv", "timestamp,value\n2026-11-23T12:00:00Z,nan\n", "finite number"),
        ("p.json", '[{"timestamp": "2026-11-23T12:00:00Z", "value": NaN}]', "NaN"),
        ("p.json", "[]", "no prices"),
        ("p.json", '[{"timestamp": "2026-11-23T12:00:00Z"}]', "0.value: Field required"),
    ],
)
def test_bad_price_files(tmp_path, name, text, message) -> None:
    with pytest.raises(RequestError, match=message):
        load_prices(_write(tmp_path, name, text))


def test_targets(tmp_path) -> None:
    text = '{"a": {"energy_amount_needed": 5, "leave_time": "2026-11-23T18:00:00+01:00"}}'
    targets = load_targets(_write(tmp_path, "t.json", text))
    assert targets["a"].energy_amount_needed == 5
    with pytest.raises(RequestError, match=r"t.json: a.energy_amount_needed"):
        load_targets(_write(tmp_path, "t.json", '{"a": {"energy_amount_needed": -5}}'))


@pytest.mark.parametrize("path", sorted((EXAMPLES / "prices").glob("*")), ids=lambda p: p.name)
def test_example_price_files_load(path) -> None:
    prices = load_prices(path)
    assert len(prices) >= 2


@pytest.mark.parametrize("path", sorted((EXAMPLES / "requests").glob("*.json")),
                         ids=lambda p: p.name)
def test_example_requests_load(path) -> None:
    assert load_request(path).children
