"""Opening the SQLite logs (sessions, audit): a damaged file stops the start with its name.

A log is evidence (billing, §14a), so a file that is not a database, or fails SQLite's own
check, is never reset or replaced: the service refuses to start and says which file to move
aside. A write-ahead log cut short by a power loss is normal for SQLite (it keeps every
complete commit); it is reported, because the last seconds before the cut are not in it.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
from pathlib import Path

from energytree.errors import ConfigError

__all__ = ["CHECKPOINT_PAGES", "WAL_LIMIT_BYTES", "open_database"]

log = logging.getLogger(__name__)

CHECKPOINT_PAGES = 256  # 1 MiB of 4 KiB pages between WAL checkpoints
WAL_LIMIT_BYTES = 1 << 20  # the WAL is truncated to this after a checkpoint
WAL_HEADER_BYTES = 32
WAL_FRAME_HEADER_BYTES = 24


def open_database(path: Path, what: str, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """An autocommit connection to ``path`` in WAL mode with bounded checkpoints;
    ConfigError if the file is damaged."""
    _report_torn_wal(path, what)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=check_same_thread)
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: cannot open the {what}: {exc}") from exc
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
    except sqlite3.Error as exc:
        conn.close()
        raise _damaged(path, what, str(exc)) from exc
    if problems != ["ok"]:
        conn.close()
        raise _damaged(path, what, "; ".join(problems))
    return conn


def _damaged(path: Path, what: str, problem: str) -> ConfigError:
    return ConfigError(f"{path}: the {what} is damaged ({problem}); it is kept as it is: move it "
                       "aside (and its -wal file) to start a new one")


def _report_torn_wal(path: Path, what: str) -> None:
    """Warn when the WAL does not end on a frame boundary (a write cut off by a power loss)."""
    wal = Path(f"{path}-wal")
    try:
        size = wal.stat().st_size
        with wal.open("rb") as file:
            header = file.read(WAL_HEADER_BYTES)
    except OSError:
        return
    if size <= WAL_HEADER_BYTES or len(header) < WAL_HEADER_BYTES:
        return
    page_size = struct.unpack(">I", header[8:12])[0]
    frame = WAL_FRAME_HEADER_BYTES + page_size
    if page_size and (size - WAL_HEADER_BYTES) % frame:
        log.warning("%s: the %s's last write was cut short (power loss?); it continues from "
                    "its last complete commit", wal, what)
