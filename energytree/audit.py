"""The audit log of grid-operator commands (§14a evidence): who limited the site, when, how.

Each command is one record (source, start, end, value, unit, grid power at the start, and the
channel and identity it came through: ``http``/``admin``, ``grpc``/``operator@ipv4:…``,
``sunspec``/the Modbus master's address). A new command from the same source ends the
previous one. Records live in SQLite, so they survive
restarts and crashes, and export as CSV.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import datetime
from pathlib import Path

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


class AuditLog:
    """An append-only log of operator commands in a SQLite file (or in memory)."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL" if str(path) != ":memory:" else "SELECT 1")
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
        with self._db:  # autocommit connection: BEGIN makes "end the old, add the new" atomic
            self._db.execute("BEGIN")
            self._db.execute(
                "UPDATE commands SET end = ? WHERE source = ? AND end IS NULL", (stamp, source)
            )
            self._db.execute(
                "INSERT INTO commands (source, start, value, unit, grid_power_w, detail, "
                "channel, identity) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (source, stamp, value, unit, grid_power_w, detail, channel, identity),
            )

    def end(self, source: str, at: datetime) -> None:
        """The command of ``source`` was withdrawn."""
        with self._db:
            self._db.execute(
                "UPDATE commands SET end = ? WHERE source = ? AND end IS NULL",
                (format_timestamp(at), source),
            )

    def rows(self) -> list[dict[str, object]]:
        cursor = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM commands ORDER BY id")
        return [dict(zip(COLUMNS, row, strict=True)) for row in cursor]

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows())
        return out.getvalue()

    def close(self) -> None:
        self._db.close()
