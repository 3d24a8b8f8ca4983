"""The command line: ``energytree plan`` and ``energytree schema``.

Bad input: exit code 2, a message on stderr, nothing on stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from energytree.app.cli import main
from energytree.inputs import load_request
from energytree.types import EnforcedLimits, to_utc
from tests.builders import EXAMPLES
from tests.oracle import check_slot

REQUESTS = sorted((EXAMPLES / "requests").glob("*.json"))
NOW = "2026-11-23T12:00:00Z"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse reports usage errors this way
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("type_name", ["EnergyFlowRequest", "EnforcedLimits", "ExternalLimits",
                                       "SiteFile"])
def test_schema_prints_a_json_schema(capsys, type_name) -> None:
    code, out, _ = _run(capsys, "schema", type_name)
    schema = _resolve(json.loads(out))
    assert code == 0
    assert schema["title"] == type_name and schema["type"] == "object"
    assert schema["additionalProperties"] is False


def test_the_site_files_schema_has_every_section(capsys) -> None:
    code, out, _ = _run(capsys, "schema", "SiteFile")
    properties = _resolve(json.loads(out))["properties"]
    assert code == 0 and {"grid", "meter", "csms", "grpc", "dashboard"} <= set(properties)


def test_schema_defaults_to_the_request(capsys) -> None:
    code, out, _ = _run(capsys, "schema")
    assert code == 0 and "schedule_import" in _resolve(json.loads(out))["properties"]


def _resolve(schema: dict) -> dict:
    """The top-level object of a schema (a recursive model puts it under ``$defs``)."""
    ref = schema.get("$ref")
    return schema["$defs"][ref.rsplit("/", 1)[1]] if ref else schema


EVSE = {"uuid": "a", "node_type": "Evse", "schedule_import": [
    {"timestamp": NOW, "limits_to_root": {"ac_max_current_A": 16}, "limits_to_leaves": {}}]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('{"uuid": "a",\n "node_type": }', r"request.json:2:15: invalid JSON",
                     id="bad JSON"),
        pytest.param(json.dumps({**EVSE, "priority_request": 1})[:-1] + ', "x": NaN}',
                     "NaN is not a number", id="NaN"),
        pytest.param(json.dumps({**EVSE, "node_type": "Generic"}), "no EVSE", id="no EVSE"),
        pytest.param(json.dumps({**EVSE, "schedule_import": [{"timestamp": "noon"}]}),
                     "schedule_import.0.timestamp", id="bad field"),
        pytest.param(json.dumps({**EVSE, "schedule_import": [
            {"timestamp": NOW, "limits_to_root": {}, "limits_to_leaves": {}}]}),
            "no finite ac_max_current_A", id="no limit anywhere"),
        pytest.param(json.dumps({"uuid": "g", "node_type": "Generic", "schedule_import": [],
                                 "children": [{**EVSE, "children": [EVSE]}]}),
                     "must be leaves", id="EVSE with children"),
    ],
)
def test_plan_bad_request(capsys, write_file, text, message) -> None:
    code, out, err = _run(capsys, "plan", str(write_file("request.json", text)), "--now", NOW)
    assert code == 2
    assert out == ""
    assert err.startswith("energytree plan: ")
    assert message in err.replace("\\", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["plan", "missing.json", "--now", NOW], "cannot read", id="missing file"),
        pytest.param(["plan", str(EXAMPLES / "requests" / "home.json"), "--now", "noon"],
                     "not an RFC 3339 timestamp", id="bad --now"),
        pytest.param(["plan", str(EXAMPLES / "requests" / "home.json"), "--slot-minutes", "0"],
                     "must be a positive number", id="bad --slot-minutes"),
        pytest.param(["plan", str(EXAMPLES / "requests" / "home.json"), "--prices",
                      "missing.csv"], "cannot read", id="missing price file"),
        pytest.param(["plan"], "required", id="no request"),
        pytest.param(["plan", str(EXAMPLES / "requests" / "home.json"), "--valid-for", "-5"],
                     "between 1 and 86400 seconds", id="negative --valid-for"),
        pytest.param(["plan", str(EXAMPLES / "requests" / "home.json"), "--valid-for", "1e9"],
                     "not a whole number", id="bad --valid-for"),
        pytest.param(["plan", str(EXAMPLES / "requests" / "home.json"), "--slot-minutes",
                      "0.01", "--horizon-hours", "100"], "more than 5000 slots",
                     id="too many slots"),
    ],
)
def test_plan_bad_arguments(capsys, args, message) -> None:
    code, out, err = _run(capsys, *args)
    assert code == 2
    assert out == ""
    assert message in err


def test_plan_bad_input_through_the_console_script(write_file) -> None:
    path = str(write_file("request.json", "{"))
    proc = subprocess.run(
        [sys.executable, "-m", "energytree", "plan", path, "--now", NOW],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "invalid JSON" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("path", REQUESTS, ids=lambda p: p.name)
def test_plan_examples_run_as_they_are(capsys, path) -> None:
    args = ["plan", str(path), "--now", NOW, "--horizon-hours", "6", "--time-budget", "5"]
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    limits = [EnforcedLimits.model_validate(x) for x in json.loads(out)]
    request = load_request(path)
    evses = _evse_uuids(request)
    assert [x.uuid for x in limits] == evses, "one per EVSE leaf, in tree order"
    slots = len(limits[0].schedule)
    for x in limits:
        assert x.valid_for == 10
        assert x.valid_until == to_utc(NOW).replace(second=10)
        assert x.limits_root_side == x.schedule[0].limits_to_root
        assert [s.timestamp for s in x.schedule] == [s.timestamp for s in limits[0].schedule]
    # whatever the planner chose, it keeps every limit of the tree (rounded values: 0.01 A)
    for t in range(slots):
        amps = [x.schedule[t].limits_to_root.ac_max_current_A for x in limits]
        phases = [x.schedule[t].limits_to_root.ac_max_phase_count for x in limits]
        check_slot(request, limits[0].schedule[t].timestamp, _array(amps), _array(phases),
                   maximal=False, tol=0.02)
    assert _run(capsys, *args)[1] == out, "deterministic for a given --now"


def test_plan_with_a_price_file(capsys) -> None:
    request = str(EXAMPLES / "requests" / "home.json")
    code, out, err = _run(capsys, "plan", request, "--now", NOW, "--horizon-hours", "4",
                          "--prices", str(EXAMPLES / "prices" / "tou-day.csv"))
    assert code == 0, err
    first = json.loads(out)[0]["schedule"][0]
    assert first["price_per_kwh"]["value"] == 0.19


def _evse_uuids(request) -> list[str]:
    if request.node_type == "Evse":
        return [request.uuid]
    return [u for child in request.children for u in _evse_uuids(child)]


def _array(values: list) -> np.ndarray:
    return np.array(values, dtype=float)
