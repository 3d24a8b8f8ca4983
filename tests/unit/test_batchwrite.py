"""The batch writer and the logs that use it: events at once, counters in batches, all kept."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from energytree.audit import AuditLog
from energytree.batchwrite import BatchWriter
from energytree.errors import ConfigError
from energytree.sessions import (
    Database,
    MeterReading,
    SessionLog,
    SessionTracker,
    StateChanged,
)
from energytree.sqlitefile import open_database
from energytree.types import EvseState

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
HOUR_S = 3600.0  # longer than any test: counters are written only when something forces it


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    """What another process would read from the file now."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def eventually(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    """Poll ``condition`` until it holds or a generous timeout passes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.01)
    return True


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "log.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v REAL)")
    conn.close()
    return path


def test_keyed_statements_replace_each_other_in_one_batch(table: Path) -> None:
    writer = BatchWriter(table, "test log", interval_s=HOUR_S)
    writer.submit(("INSERT INTO t VALUES (1, 0)", ()), urgent=True)
    assert writer.flush()
    for value in range(100):
        writer.submit(("UPDATE t SET v = ? WHERE k = 1", (value,)), key=1)
    assert rows(table, "SELECT v FROM t") == [(0.0,)]  # steady state waits for the interval
    assert writer.flush()
    assert rows(table, "SELECT v FROM t") == [(99.0,)]
    assert writer.batches == 2
    writer.close()


def test_an_urgent_statement_is_written_without_being_asked(table: Path) -> None:
    writer = BatchWriter(table, "test log", interval_s=HOUR_S)
    writer.submit(("INSERT INTO t VALUES (1, 5)", ()), urgent=True)
    assert eventually(lambda: rows(table, "SELECT v FROM t") == [(5.0,)])
    writer.close()


def test_close_writes_what_is_pending_and_truncates_the_wal(table: Path) -> None:
    writer = BatchWriter(table, "test log", interval_s=HOUR_S)
    writer.submit(("INSERT INTO t VALUES (2, 7)", ()))
    writer.close()
    assert rows(table, "SELECT k, v FROM t") == [(2, 7.0)]
    wal = Path(f"{table}-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(("INSERT INTO t VALUES (3, 0)", ()))


def test_a_failing_batch_is_kept_and_written_later(table: Path) -> None:
    writer = BatchWriter(table, "test log", interval_s=HOUR_S)
    writer.submit(("INSERT INTO missing VALUES (1)", ()), urgent=True)
    writer.submit(("INSERT INTO t VALUES (1, 1)", ()))
    assert not writer.flush(timeout_s=0.5)  # the table is missing: nothing can be committed
    conn = sqlite3.connect(table)
    conn.execute("CREATE TABLE missing (x INTEGER)")
    conn.close()
    assert writer.flush()
    assert rows(table, "SELECT k FROM t") == [(1,)]
    writer.close()


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[tuple[Database, BatchWriter]]:
    db = Database(tmp_path / "sessions.sqlite")
    writer = BatchWriter(db.path, "session log", interval_s=HOUR_S)
    yield db, writer
    writer.close()
    db.close()


def test_session_events_are_written_at_once_and_counters_in_batches(
        sessions: tuple[Database, BatchWriter]) -> None:
    db, writer = sessions
    tracker = SessionTracker(SessionLog(db, writer))
    sql = "SELECT meter_last_wh, stop FROM sessions"
    tracker.feed(MeterReading("e1", 1000.0, 0.0, at(0)))
    tracker.feed(StateChanged("e1", EvseState.Charging, at(0)))
    assert eventually(lambda: rows(db.path, sql) == [(1000.0, None)])
    for second in range(1, 301):  # five minutes of 1-s readings: none is a write of its own
        tracker.feed(MeterReading("e1", 1000.0 + second, 3600.0, at(second)))
    assert rows(db.path, sql) == [(1000.0, None)]
    tracker.feed(StateChanged("e1", EvseState.Unplugged, at(301)))
    assert eventually(lambda: rows(db.path, sql) == [(1300.0, at(301).isoformat())])
    assert writer.batches == 2


def test_readers_see_pending_counters_and_a_restart_continues(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite"
    db = Database(path)
    writer = BatchWriter(path, "session log", interval_s=HOUR_S)
    tracker = SessionTracker(SessionLog(db, writer))
    tracker.feed(MeterReading("e1", 10.0, 0.0, at(0)))
    tracker.feed(StateChanged("e1", EvseState.Charging, at(0)))
    tracker.feed(MeterReading("e1", 50.0, 1000.0, at(60)))
    (running,) = SessionLog(db, writer).open_sessions()
    assert running.meter_last_wh == 50.0
    writer.close()
    db.close()
    db, writer = Database(path), BatchWriter(path, "session log", interval_s=HOUR_S)
    log = SessionLog(db, writer)
    again = SessionTracker(log)
    again.feed(MeterReading("e1", 80.0, 1000.0, at(120)))
    again.feed(StateChanged("e1", EvseState.Unplugged, at(121)))
    (done,) = log.sessions()
    assert (done.id, done.energy_wh, done.stop) == (running.id, 70.0, at(121))
    writer.close()
    db.close()


def test_the_audit_log_in_a_file_writes_each_command(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    audit = AuditLog(path)
    audit.record("sunspec", at(0), 5000.0, "W", None, "50 %")
    audit.record("sunspec", at(60), 7000.0, "W", None, "70 %")
    assert eventually(lambda: len(rows(path, "SELECT id FROM commands")) == 2)
    assert [(r["start"], r["end"]) for r in audit.rows()] == [
        ("2026-11-23T10:00:00Z", "2026-11-23T10:01:00Z"), ("2026-11-23T10:01:00Z", None)]
    audit.close()


def test_a_file_that_is_not_a_database_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    path.write_bytes(b"x" * 4096)
    with pytest.raises(ConfigError, match=r"audit\.sqlite: the audit log is damaged"):
        AuditLog(path)
    assert path.read_bytes() == b"x" * 4096


def test_a_wal_cut_short_is_reported_and_the_log_continues(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    live = tmp_path / "live.sqlite"
    writer = BatchWriter(live, "session log", interval_s=HOUR_S)
    writer.submit(("CREATE TABLE t (k INTEGER PRIMARY KEY)", ()),
                  ("INSERT INTO t VALUES (1)", ()), urgent=True)
    assert writer.flush()
    copy = tmp_path / "copy.sqlite"  # what a power cut in the middle of a frame leaves
    copy.write_bytes(live.read_bytes())
    Path(f"{copy}-wal").write_bytes(Path(f"{live}-wal").read_bytes() + b"\x00" * 100)
    writer.close()
    conn = open_database(copy, "session log")
    assert conn.execute("SELECT k FROM t").fetchall() == [(1,)]
    conn.close()
    assert any("last write was cut short" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)


def test_a_lone_change_is_written_when_its_interval_is_up(table: Path) -> None:
    writer = BatchWriter(table, "test log", interval_s=0.2)
    writer.submit(("INSERT INTO t VALUES (4, 4)", ()))  # not urgent, and nothing follows
    assert eventually(lambda: rows(table, "SELECT k FROM t") == [(4,)])
    writer.close()
