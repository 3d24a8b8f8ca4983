"""``energytree preview``: the table, the terminal chart, the figure files and bad input."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from energytree.app.cli import main, make_plan
from energytree.app.preview import progress
from energytree.app.render import shown_slots
from energytree.planfigures import delivered_kwh, site_limit_w
from energytree.problem import PlanOptions, build_problem
from energytree.site import SiteConfig, site_request
from energytree.yamlfile import parse_model

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SMALL = str(EXAMPLES / "small-business.yaml")
HOME = str(EXAMPLES / "home.yaml")
PRICES = str(Path(__file__).parents[1] / "data" / "preview-tou-day.csv")
MORNING = "2026-11-23T06:00:00Z"  # 07:00 in Berlin, before every leave time of the examples
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def preview(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["preview", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def block(out: str, uuid: str) -> list[str]:
    """The lines of one EVSE's table: its header down to the blank line after it."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^\S {re.escape(uuid)}  ", line))
    end = lines.index("", start)
    return lines[start:end]


def site_yaml(tmp_path: Path, body: str, name: str = "site.yaml") -> str:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return str(path)


def many_evses(count: int) -> str:
    evses = "\n".join(
        f"    - {{evse: e{k}, max_current_A: 16, state: Charging}}" for k in range(count)
    )
    head = "name: Depot\ntimezone: Europe/Berlin\ngrid:\n  max_current_A: 400\n  children:\n"
    return head + evses + "\n"


# -- the table ---------------------------------------------------------------------------------


def test_every_evse_has_a_header_columns_and_a_summary(capsys):
    code, out, err = preview(capsys, SMALL, "--now", MORNING, "--prices", PRICES)
    assert (code, err) == (0, "")
    for uuid in ("carport-1", "carport-2", "carport-3", "workshop-1", "workshop-2",
                 "workshop-1ph"):
        lines = block(out, uuid)
        assert lines[1].split() == ["time", "EUR/kWh", "A", "ph", "kW", "energy", "binding",
                                    "constraint"]
        assert lines[2].startswith("  Mon 07:00 ")  # local time: UTC+1 in November
        assert lines[-1].startswith("  by ")
    summary = block(out, "carport-1")[-1]
    assert summary == "  by leave time Mon 18:00: 30.0 kWh of 30.0 kWh, shortfall 0.0 kWh"


def test_a_row_shows_price_current_power_energy_and_reason(capsys):
    _, out, _ = preview(capsys, SMALL, "--now", MORNING, "--prices", PRICES)
    row = block(out, "workshop-2")[2].split()
    assert row[:7] == ["Mon", "07:00", "0.300", "0.0", "–", "0.0", "0.0"]
    assert " ".join(row[8:]) == "workshop-2: no power wanted (state Unplugged)"
    leave = next(line for line in block(out, "carport-1") if "← leave time" in line)
    assert leave.split()[:3] == ["Mon", "18:00", "0.420"]


def test_only_changes_are_rows_and_slots_limits_them(capsys):
    _, out, _ = preview(capsys, SMALL, "--now", MORNING)
    assert len(block(out, "workshop-2")) == 2 + 2 + 1  # header, columns, first, last, summary
    _, limited, _ = preview(capsys, SMALL, "--now", MORNING, "--slots", "2")
    lines = block(limited, "carport-1")
    assert len(lines) == 2 + 2 + 2
    assert re.fullmatch(r"  … \d+ more rows \(raise --slots to see them\)", lines[-2])


def test_soc_is_shown_when_capacity_and_soc_are_known(capsys):
    _, out, _ = preview(capsys, HOME, "--now", "2026-11-23T17:00:00Z")
    lines = block(out, "wallbox")
    assert lines[1].split()[5] == "SoC"
    assert lines[2].split()[6:8] == ["35.0", "%"]
    assert lines[-1].endswith("27.0 kWh of 27.0 kWh, shortfall 0.0 kWh, SoC 80.0 %")


def test_targets_file_overrides_the_site_file(capsys, tmp_path):
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"carport-3": {"energy_amount_needed": 5,
                                                 "leave_time": "2026-11-23T09:00:00Z"}}))
    _, out, _ = preview(capsys, SMALL, "--now", MORNING, "--targets", str(targets))
    assert "target: 5.0 kWh, leaves Mon 10:00" in block(out, "carport-3")[0]
    assert block(out, "carport-1")[0].endswith("target: 30.0 kWh, leaves Mon 18:00")
    assert "by leave time Mon 10:00: 5.0 kWh of 5.0 kWh" in block(out, "carport-3")[-1]


def test_leave_times_in_the_past_still_give_a_plan(capsys):
    code, out, _ = preview(capsys, SMALL, "--now", "2026-12-01T08:00:00Z")
    assert code == 0
    assert "leave time Mon 18:00 has passed" not in out  # a week later: the date would be wrong
    assert "has passed; by the end of the horizon" in block(out, "carport-1")[-1]


def test_formula_limits_are_evaluated_without_live_values(capsys, tmp_path):
    site = site_yaml(tmp_path, "grid:\n  max_current_A: 35\n"
                     "  max_power_W: '22000 * (exists(CM.AVAIL) ? CM.AVAIL : 100) / 100'\n"
                     "  children:\n    - {evse: car, state: Charging}\n")
    code, out, _ = preview(capsys, site, "--now", MORNING)
    assert code == 0
    assert "─ site limit 22.0 kW" in out
    assert "note: formula '22000 * (exists(CM.AVAIL) ? CM.AVAIL : 100) / 100' = 22000" in out


def test_times_follow_daylight_saving(capsys, tmp_path):
    site = site_yaml(tmp_path, "timezone: Europe/Berlin\ngrid:\n  max_current_A: 32\n"
                     "  children:\n    - {evse: car, state: Charging}\n")
    _, out, _ = preview(capsys, site, "--now", "2026-10-24T22:00:00Z")  # DST ends 01:00 UTC
    lines = block(out, "car")
    assert lines[2].split()[:3] == ["Sun", "00:00", "CEST"]
    assert lines[-2].split()[:3] == ["Sun", "22:45", "CET"]


# -- chart and meta ----------------------------------------------------------------------------


def test_terminal_chart_and_plan_meta(capsys):
    _, out, _ = preview(capsys, SMALL, "--now", MORNING, "--prices", PRICES)
    assert "─ site limit 40.0 kW   ┊ leave time" in out
    assert re.search(r"^ {3}40\.0 ┤─+", out, flags=re.MULTILINE)
    assert re.search(r"^  price  [▁▂▃▄▅▆▇█]+  0\.220–0\.420 EUR/kWh$", out, flags=re.MULTILINE)
    assert "Mon 14:00 carport-2 · Mon 16:00" not in out  # carport-3 has no target here
    tail = out.splitlines()[-4:]
    assert "plan: optimiser" in tail
    assert "note: no battery capacity known for carport-3" in out  # it has no target here
    assert re.fullmatch(r"total energy from the grid: [\d.]+ kWh over the horizon; "
                        r"cost [\d.]+ EUR; shortfall at leave times 0\.0 kWh", tail[-1])


@pytest.mark.parametrize(
    ("suffix", "check"),
    [
        pytest.param(".png", lambda data: data.startswith(PNG_SIGNATURE), id="png"),
        pytest.param(".svg", lambda data: data.startswith(b"<?xml") and b"<svg" in data,
                     id="svg"),
    ],
)
def test_out_writes_the_figure(capsys, tmp_path, suffix, check):
    path, again = tmp_path / f"plan{suffix}", tmp_path / f"again{suffix}"
    code, out, _ = preview(capsys, SMALL, "--now", MORNING, "--prices", PRICES, "--out", str(path))
    assert code == 0
    data = path.read_bytes()
    assert len(data) > 1000
    assert check(data)
    assert out.endswith(f"chart: {path}\n")
    preview(capsys, SMALL, "--now", MORNING, "--prices", PRICES, "--out", str(again))
    assert again.read_bytes() == data  # reproducible: no dates, no random ids


def test_a_large_site_says_that_it_plans_on_stderr_only(capsys, tmp_path):
    site = site_yaml(tmp_path, many_evses(60))
    code, out, err = preview(capsys, site, "--now", MORNING, "--slots", "1")
    assert code == 0
    assert err == "planning 60 EVSEs…\n"
    assert "planning" not in out


def test_a_terminal_gets_a_spinner_that_cleans_up():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    with progress(3, stream):
        pass
    text = stream.getvalue()
    assert "planning 3 EVSEs…" in text
    assert text.endswith("\r") and text.rstrip("\r ").count("\r") >= 1


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "extra", "message"),
    [
        pytest.param({"site.yaml": "grid:\n  max_current_A: [\n"}, [],
                     r"site\.yaml:\d+:\d+: not valid YAML", id="yaml-syntax"),
        pytest.param({"site.yaml": "grid:\n  children:\n    - {evse: a, min_current_A: -1}\n"},
                     [], r"site\.yaml:3: grid\.children\.0\.evse\.min_current_A", id="bad-field"),
        pytest.param({"site.yaml": "name: x\ntimezone: Mars/Olympus\ngrid: {}\n"}, [],
                     r"site\.yaml:2: timezone: .*unknown time zone 'Mars/Olympus'", id="timezone"),
        pytest.param({"p.csv": "timestamp,value\nnot-a-time,0.3\n"}, ["--prices", "p.csv"],
                     r"p\.csv: 0\.timestamp", id="prices"),
        pytest.param({"t.json": '{"a": {\n "leave_time": 5,\n'}, ["--targets", "t.json"],
                     r"t\.json:3:1: invalid JSON", id="targets-json"),
        pytest.param({"t.json": '{"nobody": {"energy_amount_needed": 3}}'},
                     ["--targets", "t.json"], r"t\.json: nobody: no EVSE", id="targets-uuid"),
        pytest.param({}, ["--out", "plan.pdf"], r"--out plan\.pdf: .* \.png or \.svg",
                     id="out-format"),
        pytest.param({"site.yaml": "grid:\n  max_power_W: 'CM.AVAIL * 100'\n"
                                   "  children:\n    - {evse: a}\n"}, [],
                     r"site\.yaml: a formula needs live values .*unknown name 'CM\.AVAIL'",
                     id="formula-needs-live-values"),
        pytest.param({}, ["--slots", "0"], r"--slots must be at least 1", id="slots"),
        pytest.param({}, ["--out", "missing/plan.png"], r"--out missing/plan\.png: cannot write",
                     id="out-unwritable"),
    ],
)
def test_bad_input_exits_2_with_the_file_and_nothing_on_stdout(
    capsys, tmp_path, monkeypatch, files, extra, message
):
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    if "site.yaml" not in files:
        site_yaml(tmp_path, "grid:\n  children:\n    - {evse: a, state: Charging}\n")
    code, out, err = preview(capsys, "site.yaml", "--now", MORNING, *extra)
    assert (code, out) == (2, "")
    assert err.startswith("energytree preview: ")
    assert re.search(message, err), err
    assert not (tmp_path / "plan.pdf").exists()


# -- the numbers behind the picture ------------------------------------------------------------


@pytest.mark.parametrize(
    ("grid", "expected_w"),
    [
        pytest.param("max_current_A: 63\n  max_power_W: 40000", 40_000.0, id="watt-cap-binds"),
        pytest.param("max_current_A: 35", 35 * 3 * 230.0, id="amps-times-3-phases"),
        pytest.param("max_current_A: 40\n  phases: 1", 40 * 230.0, id="single-phase-root"),
        pytest.param("max_power_W: 11000", 11_000.0, id="watts-only"),
    ],
)
def test_site_limit(grid, expected_w):
    plan = _plan(f"grid:\n  {grid}\n  children:\n    - {{evse: a, state: Charging}}\n")
    assert site_limit_w(plan) == pytest.approx(np.full(plan.problem.slots, expected_w))


def test_table_energy_agrees_with_the_plan():
    """The running total at each leave time is what the plan says arrives by then."""
    plan = _plan((EXAMPLES / "small-business.yaml").read_text())
    at_deadline = delivered_kwh(plan)[np.arange(plan.problem.evse_count), plan.deadlines()]
    assert at_deadline == pytest.approx(plan.energy_kwh())
    for e in range(plan.problem.evse_count):
        slots, _ = shown_slots(plan, e, None)
        assert slots[0] == 0 and slots[-1] == plan.problem.slots - 1


def _plan(text: str):
    site = parse_model(text, SiteConfig, "site.yaml")
    now = datetime(2026, 11, 23, 6, tzinfo=UTC)
    options = PlanOptions(slot_s=site.slot_minutes * 60, horizon_s=site.horizon_hours * 3600,
                          nominal_voltage_v=site.nominal_voltage_V)
    return make_plan(build_problem(site_request(site, now), now, options))


def test_office_example_meets_every_target_without_price_reasons():
    """The office car park from 06:00: every target is reachable, so every one is met, and
    with no prices known no EVSE waits "for cheaper slots"."""
    plan = _plan((EXAMPLES / "office.yaml").read_text())
    assert plan.method == "optimiser"
    assert plan.shortfall_kwh() == pytest.approx(np.zeros(8), abs=1e-3)
    assert not any(r.startswith("price") for row in plan.reasons for r in row)
