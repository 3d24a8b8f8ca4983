"""The charging-session log: per-EVSE events in, durable sessions out, CSV for billing.

A ``SessionTracker`` turns events of the charger side (state changes, meter readings with the
energy register, authorisations, explicit stops) into sessions and writes every change to a
``SessionLog`` (SQLite, WAL; from a worker thread in batches when given a ``BatchWriter``,
else one transaction per change). It runs whether or not a supplier
backend is configured; the gateway listens to its changes. Usage::

    db = Database(Path("gateway.sqlite"))
    tracker = SessionTracker(SessionLog(db), tariff=lambda: variables.value("TARIF"))
    tracker.feed(StateChanged("evse-1", EvseState.Charging, now))
    SessionLog(db).write_csv(sys.stdout)

Rules: a session starts when the EVSE enters an active state (PrepareCharging, WaitForEnergy,
Charging, PausedEV, PausedEVSE), or waits for authorisation (WaitForAuth) and gets it, and its
energy register is known; it ends when the EVSE is
unplugged or disabled, or on ``Stopped`` (remote/local stop) — then a new session needs a
re-plug or a new authorisation. Energy is register(stop) − register(start); the average power
is that energy over the duration.

Energy never goes backwards within a session. A reading below the last one means the meter's
register was reset (a restarted or replaced meter): it starts a new baseline, and the session's
register carries on from where it was (``meter_offset_wh`` is added to the meter's readings).
Every Wh counted goes to exactly one tariff, so the per-tariff split adds up to the total, and
the readings announced to listeners (the meter values mirrored upstream) are the session's
register, monotonic within a transaction.
"""

from __future__ import annotations

import contextlib
import csv
import json
import sqlite3
import uuid as uuidlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Literal, TextIO

from energytree.batchwrite import BatchWriter
from energytree.sqlitefile import open_database
from energytree.types import EvseState

__all__ = [
    "ACTIVE_STATES",
    "Authorized",
    "Database",
    "EvseEvent",
    "MeterReading",
    "Session",
    "SessionChange",
    "SessionLog",
    "SessionTracker",
    "StateChanged",
    "Stopped",
]

ACTIVE_STATES = frozenset({EvseState.PrepareCharging, EvseState.WaitForEnergy,
                           EvseState.Charging, EvseState.PausedEV, EvseState.PausedEVSE})
ENDING_STATES = frozenset({EvseState.Unplugged, EvseState.Disabled})


# ---- events from the charger side ---------------------------------------------------------

@dataclass(frozen=True)
class StateChanged:
    evse: str
    state: EvseState
    at: datetime


@dataclass(frozen=True)
class MeterReading:
    """The EVSE meter: import register [Wh] and active power [W]."""

    evse: str
    energy_wh: float
    power_w: float
    at: datetime


@dataclass(frozen=True)
class Authorized:
    evse: str
    id_tag: str
    at: datetime


@dataclass(frozen=True)
class Stopped:
    """The transaction was ended while the car may still be plugged in."""

    evse: str
    at: datetime
    reason: str = "Local"  # OCPP Reason: Local, Remote, EVDisconnected, Other, ...


EvseEvent = StateChanged | MeterReading | Authorized | Stopped


# ---- the session -------------------------------------------------------------------------

@dataclass(frozen=True)
class Session:
    """One charging session; ``meter_last_wh`` is the stop register once ``stop`` is set."""

    id: int
    uid: str  # stable, also the OCPP 2.0.1 transactionId
    evse: str
    id_tag: str | None
    start: datetime
    meter_start_wh: float
    meter_last_wh: float
    last_at: datetime
    max_power_w: float = 0.0
    tariff: float | None = None  # TARIF at the start
    tariff_wh: dict[str, float] = field(default_factory=dict)  # energy [Wh] per TARIF value
    stop: datetime | None = None
    stop_reason: str | None = None
    meter_offset_wh: float = 0.0  # added to the meter's readings since its last reset

    @property
    def energy_wh(self) -> float:
        return self.meter_last_wh - self.meter_start_wh

    @property
    def avg_power_w(self) -> float | None:
        """Energy over duration [W]; None for a session of no length."""
        seconds = ((self.stop or self.last_at) - self.start).total_seconds()
        return None if seconds <= 0 else self.energy_wh * 3600.0 / seconds


@dataclass(frozen=True)
class SessionChange:
    """What the tracker tells listeners; ``reading`` is set for ``meter``."""

    kind: Literal["started", "meter", "stopped"]
    session: Session
    reading: MeterReading | None = None


# ---- storage -----------------------------------------------------------------------------

class Database:
    """One SQLite file in WAL mode; ``transaction()`` nests, the outermost one commits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = open_database(path, "session log")
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA synchronous=FULL")  # a queued message survives a power cut
        self.conn.execute("PRAGMA busy_timeout=5000")
        self._depth = 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._depth = 0

    def close(self) -> None:
        self.conn.close()


_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, uid TEXT NOT NULL UNIQUE, evse TEXT NOT NULL,
    id_tag TEXT, start TEXT NOT NULL, meter_start_wh REAL NOT NULL, meter_last_wh REAL NOT NULL,
    last_at TEXT NOT NULL, max_power_w REAL NOT NULL, tariff REAL, tariff_wh TEXT NOT NULL,
    stop TEXT, stop_reason TEXT, meter_offset_wh REAL NOT NULL DEFAULT 0)
"""
_OFFSET_COLUMN = "ALTER TABLE sessions ADD COLUMN meter_offset_wh REAL NOT NULL DEFAULT 0"
_COLUMNS = ("uid", "evse", "id_tag", "start", "meter_start_wh", "meter_last_wh", "last_at",
            "max_power_w", "tariff", "tariff_wh", "stop", "stop_reason", "meter_offset_wh")
CSV_HEADER = ("session", "evse", "id_tag", "start", "stop", "meter_start_wh", "meter_stop_wh",
              "energy_wh", "max_power_w", "avg_power_w", "tariff", "energy_wh_by_tariff",
              "stop_reason")


def _row(s: Session) -> tuple[object, ...]:
    return (s.uid, s.evse, s.id_tag, s.start.isoformat(), s.meter_start_wh, s.meter_last_wh,
            s.last_at.isoformat(), s.max_power_w, s.tariff, json.dumps(s.tariff_wh),
            None if s.stop is None else s.stop.isoformat(), s.stop_reason, s.meter_offset_wh)


def _session(r: sqlite3.Row) -> Session:
    return Session(
        id=r["id"], uid=r["uid"], evse=r["evse"], id_tag=r["id_tag"],
        start=datetime.fromisoformat(r["start"]), meter_start_wh=r["meter_start_wh"],
        meter_last_wh=r["meter_last_wh"], last_at=datetime.fromisoformat(r["last_at"]),
        max_power_w=r["max_power_w"], tariff=r["tariff"], tariff_wh=json.loads(r["tariff_wh"]),
        stop=None if r["stop"] is None else datetime.fromisoformat(r["stop"]),
        stop_reason=r["stop_reason"], meter_offset_wh=r["meter_offset_wh"])


_INSERT = (f"INSERT INTO sessions (id, {', '.join(_COLUMNS)}) "
           f"VALUES (?, {', '.join('?' * len(_COLUMNS))})")
_UPDATE = f"UPDATE sessions SET {', '.join(f'{c} = ?' for c in _COLUMNS)} WHERE id = ?"


def _counters_only(old: Session, new: Session) -> bool:
    """Only the running counters changed: steady state, not an event worth a write of its own."""
    return replace(old, meter_last_wh=new.meter_last_wh, last_at=new.last_at,
                   max_power_w=new.max_power_w, tariff_wh=new.tariff_wh) == new


class SessionLog:
    """The sessions table.

    Without a ``writer`` every method is one transaction (or joins the caller's, as the
    supplier gateway's outbox needs). With a ``BatchWriter`` the writes leave the event loop:
    a start, stop or authorisation is committed at once, a running session's counters at
    most every ``writer.interval_s`` (the EVSE's energy register is cumulative, so what a power
    cut loses is caught up by the next reading). Readers see every change either way.
    """

    def __init__(self, db: Database, writer: BatchWriter | None = None) -> None:
        self.db = db
        self.writer = writer
        self._written: dict[int, Session] = {}  # open sessions as last handed to the writer
        with db.transaction() as conn:
            conn.execute(_SCHEMA)
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(sessions)")}
            if "meter_offset_wh" not in columns:  # a log written before register resets counted
                conn.execute(_OFFSET_COLUMN)
            self._next_id = 1 + conn.execute("SELECT COALESCE(MAX(id), 0) FROM sessions"
                                             ).fetchone()[0]

    def create(self, session: Session) -> Session:
        """Insert ``session`` (its ``id`` is ignored) and return it with the new id."""
        if self.writer is None:
            with self.db.transaction() as conn:
                cur = conn.execute(_INSERT, (None, *_row(session)))
            assert cur.lastrowid is not None
            return replace(session, id=cur.lastrowid)
        session = replace(session, id=self._next_id)
        self._next_id += 1
        self.writer.submit((_INSERT, (session.id, *_row(session))), urgent=True)
        self._written[session.id] = session
        return session

    def update(self, session: Session) -> None:
        statement = (_UPDATE, (*_row(session), session.id))
        if self.writer is None:
            with self.db.transaction() as conn:
                conn.execute(*statement)
            return
        old = self._written.get(session.id)
        urgent = old is None or not _counters_only(old, session)
        self.writer.submit(statement, key=("row", session.id), urgent=urgent)
        if session.stop is None:
            self._written[session.id] = session
        else:
            self._written.pop(session.id, None)

    def get(self, session_id: int) -> Session | None:
        self._catch_up()
        row = self.db.conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return None if row is None else _session(row)

    def open_sessions(self) -> list[Session]:
        """Sessions without a stop: what was running when the process ended."""
        self._catch_up()
        rows = self.db.conn.execute("SELECT * FROM sessions WHERE stop IS NULL ORDER BY id")
        return [_session(r) for r in rows]

    def sessions(self, since: datetime | None = None) -> list[Session]:
        """All sessions in start order, or those that started at or after ``since``."""
        self._catch_up()
        rows = self.db.conn.execute("SELECT * FROM sessions ORDER BY id")
        found = [_session(r) for r in rows]
        return [s for s in found if since is None or s.start >= since]

    def _catch_up(self) -> None:
        """Reads see what the writer still holds (a rare wait: exports, gateway look-ups)."""
        if self.writer is not None:
            self.writer.flush()

    def write_csv(self, out: TextIO, since: datetime | None = None) -> int:
        """Write the sessions as CSV (RFC 4180, header first); return how many."""
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_HEADER)
        sessions = self.sessions(since)
        for s in sessions:
            avg = s.avg_power_w
            writer.writerow((
                s.id, s.evse, s.id_tag or "", s.start.isoformat(),
                "" if s.stop is None else s.stop.isoformat(), f"{s.meter_start_wh:.0f}",
                f"{s.meter_last_wh:.0f}", f"{s.energy_wh:.0f}", f"{s.max_power_w:.0f}",
                "" if avg is None else f"{avg:.0f}", "" if s.tariff is None else f"{s.tariff:g}",
                ";".join(f"{k}:{v:.0f}" for k, v in sorted(s.tariff_wh.items())),
                s.stop_reason or ""))
        return len(sessions)


# ---- the tracker -------------------------------------------------------------------------

def _tariff_key(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


@dataclass
class _Evse:
    state: EvseState | None = None
    last: MeterReading | None = None
    id_tag: str | None = None  # authorised, waiting for a session
    pending: datetime | None = None  # active since, waiting for a register reading
    blocked: bool = False  # stopped while plugged: no new session until re-plug or auth
    session: Session | None = None


class SessionTracker:
    """Events in, sessions out (see the module docstring); ``on_change`` hears every change."""

    def __init__(self, log: SessionLog, tariff: Callable[[], float | None] = lambda: None,
                 on_change: Callable[[SessionChange], None] | None = None) -> None:
        self.log = log
        self.tariff = tariff
        self.on_change = on_change
        self._evses: dict[str, _Evse] = {}
        for s in log.open_sessions():  # a restart continues the running sessions
            reading = MeterReading(s.evse, s.meter_last_wh - s.meter_offset_wh, 0.0, s.last_at)
            self._evses[s.evse] = _Evse(EvseState.Charging, reading, session=s)

    def active(self, evse: str) -> Session | None:
        """The session running on ``evse``, if any."""
        return self._at(evse).session

    def state(self, evse: str) -> EvseState | None:
        return self._at(evse).state

    def feed(self, event: EvseEvent) -> None:
        """Apply one event; a session change is written, then announced."""
        slot = self._at(event.evse)
        if isinstance(event, StateChanged):
            self._on_state(slot, event)
        elif isinstance(event, MeterReading):
            self._on_reading(slot, event)
        elif isinstance(event, Authorized):
            self._on_authorized(slot, event)
        else:
            self._close(slot, event.at, event.reason)
            slot.blocked = True

    def _at(self, evse: str) -> _Evse:
        return self._evses.setdefault(evse, _Evse())

    def _on_state(self, slot: _Evse, event: StateChanged) -> None:
        slot.state = event.state
        if event.state in ENDING_STATES:
            reason = "EVDisconnected" if event.state is EvseState.Unplugged else "Other"
            self._close(slot, event.at, reason)
            slot.blocked, slot.id_tag, slot.pending = False, None, None
        elif self._may_open(slot):
            self._open(slot, event.evse, event.at)

    def _on_authorized(self, slot: _Evse, event: Authorized) -> None:
        session = slot.session
        if session is not None and session.id_tag is None:
            self._save(slot, replace(session, id_tag=event.id_tag))
            return
        if session is not None:
            return
        slot.id_tag, slot.blocked = event.id_tag, False
        if self._may_open(slot):
            self._open(slot, event.evse, event.at)

    @staticmethod
    def _may_open(slot: _Evse) -> bool:
        """Active (free charging or authorised by the charger), or plugged and authorised."""
        if slot.blocked:
            return False
        return slot.state in ACTIVE_STATES or (
            slot.state is EvseState.WaitForAuth and slot.id_tag is not None)

    def _on_reading(self, slot: _Evse, event: MeterReading) -> None:
        slot.last = event
        if slot.pending is not None:
            self._open(slot, event.evse, slot.pending)
            return
        session = slot.session
        if session is None or event.at < session.last_at:
            return  # late readings of another session, or buffered ones, are not billed
        offset = session.meter_offset_wh
        if event.energy_wh + offset < session.meter_last_wh:  # the register was reset
            offset = session.meter_last_wh - event.energy_wh
        register = event.energy_wh + offset
        key = _tariff_key(self.tariff())
        tariff_wh = dict(session.tariff_wh)
        tariff_wh[key] = tariff_wh.get(key, 0.0) + register - session.meter_last_wh
        session = replace(session, meter_last_wh=register, last_at=event.at,
                          max_power_w=max(session.max_power_w, event.power_w),
                          tariff_wh=tariff_wh, meter_offset_wh=offset)
        self._save(slot, session)
        self._announce(SessionChange("meter", session, replace(event, energy_wh=register)))

    def _open(self, slot: _Evse, evse: str, at: datetime) -> None:
        if slot.session is not None:
            return
        if slot.last is None:
            slot.pending = at  # the register is not known yet: start at the first reading
            return
        register = slot.last.energy_wh
        tariff = self.tariff()
        session = self.log.create(Session(
            id=0, uid=str(uuidlib.uuid4()), evse=evse, id_tag=slot.id_tag, start=at,
            meter_start_wh=register, meter_last_wh=register, last_at=max(at, slot.last.at),
            max_power_w=0.0, tariff=tariff))
        slot.session, slot.pending, slot.id_tag = session, None, None
        self._announce(SessionChange("started", session))

    def _close(self, slot: _Evse, at: datetime, reason: str) -> None:
        slot.pending = None
        session = slot.session
        if session is None:
            return
        session = replace(session, stop=max(at, session.start), stop_reason=reason)
        self.log.update(session)
        slot.session = None
        self._announce(SessionChange("stopped", session))

    def _save(self, slot: _Evse, session: Session) -> None:
        self.log.update(session)
        slot.session = session

    def _announce(self, change: SessionChange) -> None:
        if self.on_change is not None:
            self.on_change(change)
