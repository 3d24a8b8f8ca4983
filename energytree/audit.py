"""The audit log of grid-operator commands (§14a evidence): who limited the site, when, how.

Each command is one record (source, start, end, value, unit, grid power at the start, and the
channel and identity it came through: ``http``/``admin``, ``grpc``/``operator@ipv4:…``,
``sunspec``/the Modbus master's address). A new command from the same source ends the
previous one. Records live in SQLite, so they survive restarts and crashes, and export as CSV.
A log in a file is written by a ``BatchWriter``: each command is committed at once, but on the
writer's thread, never on the event loop.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import datetime
from pathlib import Path

from energytree.batchwrite import BatchWriter, Statement
from energytree.sqlitefile import open_database
from energytree.types import format_timestamp

__all__ = ["AuditLog"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    start TEXT NOT NULL,
    end TEXT,
    value REAL,
    unit TEXT NOT NULL,
    grid_power_w REAL,
    detail TEXT NOT NULL DEFAULT '',
    channel TEXT NOT NULL DEFAULT '',
    identity TEXT NOT NULL DEFAULT ''
)
"""
COLUMNS = ("source", "start", "end", "value", "unit", "grid_power_w", "detail", "channel",
           "identity")
ADDED_COLUMNS = ("channel", "identity")  # files written before they existed lack them
_END = "UPDATE commands SET end = ? WHERE source = ? AND end IS NULL"
_INSERT = (f"INSERT INTO commands ({', '.join(COLUMNS[:2] + COLUMNS[3:])}) "
           f"VALUES ({', '.join('?' * (len(COLUMNS) - 1))})")


class AuditLog:
    """An append-only log of operator commands in a SQLite file (or in memory)."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        self._path = None if str(path) == ":memory:" else Path(path)
        self._writer: BatchWriter | None = None  # started by the first write (not for exports)
        if self._path is None:
            self._db = sqlite3.connect(":memory:", isolation_level=None)
        else:
            self._db = open_database(self._path, "audit log")
        self._db.execute(SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(commands)")}
        for column in ADDED_COLUMNS:
            if column not in present:
                self._db.execute(
                    f"ALTER TABLE commands ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")

    def record(self, source: str, at: datetime, value: float | None, unit: str,
               grid_power_w: float | None, detail: str = "", *, channel: str = "",
               identity: str = "") -> None:
        """A command from ``source`` took effect at ``at``; it ends the previous one."""
        stamp = format_timestamp(at)
        self._write((_END, (stamp, source)),
                    (_INSERT, (source, stamp, value, unit, grid_power_w, detail, channel,
                               identity)))

    def end(self, source: str, at: datetime) -> None:
        """The command of ``source`` was withdrawn."""
        self._write((_END, (format_timestamp(at), source)))

    def _write(self, *statements: Statement) -> None:
        """One transaction: "end the old, add the new" is atomic."""
        if self._path is not None:
            if self._writer is None:
                self._writer = BatchWriter(self._path, "audit log")
            self._writer.submit(*statements, urgent=True)
            return
        with self._db:  # autocommit connection: BEGIN makes the statements one transaction
            self._db.execute("BEGIN")
            for sql, params in statements:
                self._db.execute(sql, params)

    def rows(self) -> list[dict[str, object]]:
        if self._writer is not None:
            self._writer.flush()
        cursor = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM commands ORDER BY id")
        return [dict(zip(COLUMNS, row, strict=True)) for row in cursor]

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        return out.getvalue()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._db.close()
