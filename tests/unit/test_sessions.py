"""The session log: events → sessions, durable in SQLite, exported as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from energytree.sessions import (
    Authorized,
    Database,
    MeterReading,
    SessionChange,
    SessionLog,
    SessionTracker,
    StateChanged,
    Stopped,
)
from energytree.types import EvseState

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
E = "evse-1"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "gateway.sqlite")
    yield database
    database.close()


class Recorder:
    def __init__(self) -> None:
        self.changes: list[SessionChange] = []

    def __call__(self, change: SessionChange) -> None:
        self.changes.append(change)

    @property
    def kinds(self) -> list[str]:
        return [c.kind for c in self.changes]


def charge(tracker: SessionTracker, evse: str = E, start_wh: float = 1000.0) -> None:
    """Plug, authorise, charge 11 kW for 30 min with readings every 10 min, unplug."""
    tracker.feed(MeterReading(evse, start_wh, 0.0, at(0)))
    tracker.feed(Authorized(evse, "TAG1", at(0)))
    tracker.feed(StateChanged(evse, EvseState.Charging, at(0)))
    for k in (1, 2, 3):
        tracker.feed(MeterReading(evse, start_wh + k * 11000 / 6, 11000.0 + k, at(10 * k)))
    tracker.feed(StateChanged(evse, EvseState.Unplugged, at(31)))


def test_a_session_from_plug_to_unplug(db: Database) -> None:
    seen = Recorder()
    tracker = SessionTracker(SessionLog(db), tariff=lambda: 1.0, on_change=seen)
    charge(tracker)
    assert seen.kinds == ["started", "meter", "meter", "meter", "stopped"]
    (s,) = SessionLog(db).sessions()
    assert (s.evse, s.id_tag, s.start, s.stop, s.stop_reason) == (
        E, "TAG1", at(0), at(31), "EVDisconnected")
    assert (s.meter_start_wh, s.meter_last_wh, s.energy_wh) == (1000.0, 6500.0, 5500.0)
    assert s.max_power_w == 11003.0
    assert s.avg_power_w == pytest.approx(5500.0 * 60 / 31)
    assert (s.tariff, s.tariff_wh) == (1.0, {"1": 5500.0})


def test_energy_is_split_by_the_tariff_in_force(db: Database) -> None:
    tariffs = iter([0.0, 0.0, 1.0, 1.0])  # at start, then per reading
    tracker = SessionTracker(SessionLog(db), tariff=lambda: next(tariffs))
    charge(tracker)
    (s,) = SessionLog(db).sessions()
    assert s.tariff == 0.0
    assert s.tariff_wh == pytest.approx({"0": 11000 / 6, "1": 2 * 11000 / 6})


def test_without_a_known_register_the_session_starts_at_the_first_reading(db: Database) -> None:
    seen = Recorder()
    tracker = SessionTracker(SessionLog(db), on_change=seen)
    tracker.feed(StateChanged(E, EvseState.Charging, at(0)))
    assert seen.kinds == []
    tracker.feed(MeterReading(E, 500.0, 7000.0, at(1)))
    assert seen.kinds == ["started"]
    s = seen.changes[0].session
    assert (s.start, s.meter_start_wh, s.id_tag) == (at(0), 500.0, None)


def test_a_stop_while_plugged_needs_a_new_authorisation(db: Database) -> None:
    seen = Recorder()
    tracker = SessionTracker(SessionLog(db), on_change=seen)
    tracker.feed(MeterReading(E, 0.0, 0.0, at(0)))
    tracker.feed(StateChanged(E, EvseState.Charging, at(0)))
    tracker.feed(Stopped(E, at(5), "Remote"))
    tracker.feed(StateChanged(E, EvseState.PausedEVSE, at(6)))
    tracker.feed(StateChanged(E, EvseState.Charging, at(7)))
    assert seen.kinds == ["started", "stopped"]
    assert seen.changes[-1].session.stop_reason == "Remote"
    tracker.feed(Authorized(E, "TAG2", at(8)))
    assert seen.kinds == ["started", "stopped", "started"]
    assert tracker.active(E) is not None and tracker.active(E).id_tag == "TAG2"  # type: ignore[union-attr]


def test_two_evses_keep_separate_sessions(db: Database) -> None:
    tracker = SessionTracker(SessionLog(db))
    charge(tracker, "a", 100.0)
    charge(tracker, "b", 9000.0)
    sessions = SessionLog(db).sessions()
    assert [(s.evse, s.energy_wh) for s in sessions] == [("a", 5500.0), ("b", 5500.0)]


def test_a_restart_continues_the_open_session(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sqlite"
    first = Database(path)
    tracker = SessionTracker(SessionLog(first))
    tracker.feed(MeterReading(E, 100.0, 0.0, at(0)))
    tracker.feed(StateChanged(E, EvseState.Charging, at(0)))
    tracker.feed(MeterReading(E, 200.0, 6000.0, at(1)))
    first.close()
    second = Database(path)
    seen = Recorder()
    again = SessionTracker(SessionLog(second), on_change=seen)
    assert again.active(E) is not None
    again.feed(StateChanged(E, EvseState.Charging, at(2)))  # no second session
    again.feed(MeterReading(E, 300.0, 6000.0, at(3)))
    again.feed(StateChanged(E, EvseState.Unplugged, at(4)))
    assert seen.kinds == ["meter", "stopped"]
    (s,) = SessionLog(second).sessions()
    assert (s.meter_start_wh, s.meter_last_wh, s.max_power_w) == (100.0, 300.0, 6000.0)
    second.close()


def test_a_failed_listener_rolls_the_change_back(db: Database) -> None:
    def boom(change: SessionChange) -> None:
        raise RuntimeError("outbox full")

    log = SessionLog(db)
    tracker = SessionTracker(log, on_change=boom)
    tracker.feed(MeterReading(E, 0.0, 0.0, at(0)))
    with pytest.raises(RuntimeError), db.transaction():
        tracker.feed(StateChanged(E, EvseState.Charging, at(0)))
    assert log.sessions() == []


def test_csv_export(db: Database) -> None:
    log = SessionLog(db)
    charge(SessionTracker(log, tariff=lambda: 1.0))
    out = io.StringIO(newline="")
    assert log.write_csv(out) == 1
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows == [{
        "session": "1", "evse": E, "id_tag": "TAG1", "start": at(0).isoformat(),
        "stop": at(31).isoformat(), "meter_start_wh": "1000", "meter_stop_wh": "6500",
        "energy_wh": "5500", "max_power_w": "11003", "avg_power_w": "10645", "tariff": "1",
        "energy_wh_by_tariff": "1:5500", "stop_reason": "EVDisconnected",
    }]
    assert out.getvalue().startswith("session,evse,id_tag,")
    assert log.write_csv(io.StringIO(), since=at(1)) == 0


def test_the_database_runs_in_wal_mode(db: Database) -> None:
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_plugged_car_starts_when_authorised(db: Database) -> None:
    seen = Recorder()
    tracker = SessionTracker(SessionLog(db), on_change=seen)
    tracker.feed(MeterReading(E, 10.0, 0.0, at(0)))
    tracker.feed(StateChanged(E, EvseState.WaitForAuth, at(0)))
    assert seen.kinds == []
    tracker.feed(Authorized(E, "REMOTE", at(1)))
    assert seen.kinds == ["started"] and seen.changes[0].session.id_tag == "REMOTE"


def test_a_register_reset_starts_a_new_baseline(db: Database) -> None:
    """39.9 Wh, then the meter restarts at 3.1 Wh: the session counts on from 39.9 Wh."""
    seen = Recorder()
    tariffs = iter([0.0, 0.0, 1.0, 1.0, 1.0])
    tracker = SessionTracker(SessionLog(db), tariff=lambda: next(tariffs), on_change=seen)
    tracker.feed(MeterReading(E, 10.0, 0.0, at(0)))
    tracker.feed(StateChanged(E, EvseState.Charging, at(0)))
    for minute, register in ((1, 39.9), (2, 3.1), (3, 10.1), (4, 2.0)):
        tracker.feed(MeterReading(E, register, 1000.0, at(minute)))
    (s,) = SessionLog(db).sessions()
    assert s.energy_wh == pytest.approx(29.9 + 7.0)  # 10 → 39.9, then 3.1 → 10.1, then reset
    assert sum(s.tariff_wh.values()) == pytest.approx(s.energy_wh)
    mirrored = [c.reading.energy_wh for c in seen.changes if c.reading is not None]
    assert mirrored == sorted(mirrored) == pytest.approx([39.9, 39.9, 46.9, 46.9])


def test_a_restart_keeps_the_baseline_of_a_reset_register(db: Database) -> None:
    tracker = SessionTracker(SessionLog(db))
    tracker.feed(MeterReading(E, 500.0, 0.0, at(0)))
    tracker.feed(StateChanged(E, EvseState.Charging, at(0)))
    tracker.feed(MeterReading(E, 5.0, 0.0, at(1)))  # reset: the session stays at 500 Wh
    restarted = SessionTracker(SessionLog(db))
    restarted.feed(MeterReading(E, 105.0, 0.0, at(2)))  # 100 Wh more, not 100 Wh less
    session = restarted.active(E)
    assert session is not None and session.energy_wh == pytest.approx(100.0)


def test_a_log_without_the_offset_column_is_upgraded(tmp_path: Path) -> None:
    old = Database(tmp_path / "old.sqlite")
    old.conn.execute(
        "CREATE TABLE sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL UNIQUE,"
        " evse TEXT NOT NULL, id_tag TEXT, start TEXT NOT NULL, meter_start_wh REAL NOT NULL,"
        " meter_last_wh REAL NOT NULL, last_at TEXT NOT NULL, max_power_w REAL NOT NULL,"
        " tariff REAL, tariff_wh TEXT NOT NULL, stop TEXT, stop_reason TEXT)")
    old.conn.execute(
        "INSERT INTO sessions (uid, evse, start, meter_start_wh, meter_last_wh, last_at,"
        " max_power_w, tariff_wh) VALUES ('u', 'evse-1', ?, 1, 2, ?, 0, '{}')",
        (at(0).isoformat(), at(1).isoformat()))
    try:
        (s,) = SessionLog(old).sessions()
        assert (s.energy_wh, s.meter_offset_wh) == (1.0, 0.0)
    finally:
        old.close()
