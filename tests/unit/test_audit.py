"""The audit log of grid-operator commands: records, ends, CSV, and it survives reopening."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

import pytest

from energytree.audit import COLUMNS, AuditLog
from tests.builders import at

T0, T1, T2, T3 = "2026-11-23T12:00:00Z", "2026-11-23T12:05:00Z", "2026-11-23T12:10:00Z", \
    "2026-11-23T12:15:00Z"


def test_a_record_holds_the_command() -> None:
    log = AuditLog()
    log.record("sunspec", at(0), 9_660.0, "W", 3_200.0, "40 % via SunSpec register 40968",
               channel="sunspec", identity="127.0.0.1:40512")
    assert log.rows() == [{"source": "sunspec", "start": T0, "end": None, "value": 9_660.0,
                           "unit": "W", "grid_power_w": 3_200.0,
                           "detail": "40 % via SunSpec register 40968", "channel": "sunspec",
                           "identity": "127.0.0.1:40512"}]
    log.close()


def test_a_file_from_before_channels_gains_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE commands (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT "
                "NULL, start TEXT NOT NULL, end TEXT, value REAL, unit TEXT NOT NULL, "
                "grid_power_w REAL, detail TEXT NOT NULL DEFAULT '')")
    old.execute("INSERT INTO commands (source, start, unit) VALUES ('ripple', ?, 'W')", (T0,))
    old.commit()
    old.close()
    log = AuditLog(path)
    log.record("CM.AVAIL", at(0), 40.0, "", None, channel="http", identity="admin")
    rows = log.rows()
    assert (rows[0]["channel"], rows[0]["identity"]) == ("", "")
    assert (rows[1]["channel"], rows[1]["identity"]) == ("http", "admin")
    log.close()


def test_a_new_command_ends_the_previous_one_of_the_same_source_only() -> None:
    log = AuditLog()
    log.record("sunspec", at(0), 9_660.0, "W", None)
    log.record("ripple", at(5), 14_490.0, "W", None, "contacts k1")
    log.record("sunspec", at(10), 24_150.0, "W", None)
    rows = log.rows()
    assert [(r["source"], r["start"], r["end"]) for r in rows] == [
        ("sunspec", T0, T2), ("ripple", T1, None), ("sunspec", T2, None)]
    log.close()


def test_end_closes_the_open_command() -> None:
    log = AuditLog()
    log.record("ocpp", at(0), None, "profile", None, "composite schedule changed")
    log.end("ocpp", at(15))
    log.end("ocpp", at(20))  # nothing open any more: no change
    log.end("sunspec", at(20))  # unknown source: nothing to end
    assert [(r["start"], r["end"]) for r in log.rows()] == [(T0, T3)]
    log.close()


def test_csv_has_a_header_and_one_line_per_command() -> None:
    log = AuditLog()
    log.record("sunspec", at(0), 9_660.0, "W", 3_200.0, "40 %, \"dimmed\"")
    log.record("ripple", at(5), None, "W", None)
    rows = list(csv.DictReader(io.StringIO(log.to_csv())))
    assert list(rows[0]) == list(COLUMNS)
    assert rows[0]["detail"] == "40 %, \"dimmed\""  # quoting survives
    assert (rows[0]["value"], rows[0]["end"]) == ("9660.0", "")
    assert rows[1]["source"] == "ripple"
    assert len(rows) == 2
    log.close()


def test_records_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    log = AuditLog(path)
    log.record("sunspec", at(0), 9_660.0, "W", None)
    log.close()
    again = AuditLog(path)
    again.record("sunspec", at(10), 24_150.0, "W", None)  # ends the command from before
    assert [(r["start"], r["end"], r["value"]) for r in again.rows()] == [
        (T0, T2, 9_660.0), (T2, None, 24_150.0)]
    again.close()
    third = AuditLog(path)
    assert len(third.rows()) == 2
    third.close()


def test_a_record_that_fails_changes_nothing() -> None:
    log = AuditLog()
    log.record("sunspec", at(0), 9_660.0, "W", None)
    with pytest.raises(sqlite3.IntegrityError):
        log.record("sunspec", at(5), 1.0, None, None)  # type: ignore[arg-type]
    assert [(r["start"], r["end"]) for r in log.rows()] == [(T0, None)]  # still open
    log.close()
