"""SQLite writes in batches on one worker thread, so the event loop never waits for a disk.

Every commit of a log costs a flash page or more and an fsync, and an fsync on an SD card can
stall for hundreds of milliseconds. A ``BatchWriter`` takes statements from the event loop
without touching the disk and commits them on its own thread, one transaction per batch:

- at once (within milliseconds) when an *urgent* statement arrives — a session started or
  ended, a grid-operator command — so events survive a power cut;
- otherwise at most every ``interval_s`` — a running session's counters. Statements with the
  same key replace each other, so steady state writes one row per session per interval.

Usage::

    writer = BatchWriter(path, "session log", interval_s=300)
    writer.submit(("UPDATE sessions SET meter_last_wh = ? WHERE id = ?", (12.5, 7)), key=7)
    writer.submit(("UPDATE commands ...", old), ("INSERT INTO commands ...", row), urgent=True)
    writer.flush()   # readers that must see everything wait for the worker
    writer.close()   # writes what is left, checkpoints the WAL

The WAL is checkpointed every ``CHECKPOINT_PAGES`` pages and truncated to ``WAL_LIMIT_BYTES``
(``open_database``), so it neither grows without bound nor is copied on every commit.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path

from energytree.sqlitefile import open_database

__all__ = [
    "BatchWriter",
    "Statement",
    "thread_bytes_written",
]

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 30.0

Statement = tuple[str, tuple[object, ...]]
Batch = dict[Hashable, tuple[Statement, ...]]


class BatchWriter:
    """One write connection to a SQLite file, used only by its worker thread (see module)."""

    def __init__(self, path: Path, what: str, interval_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self.interval_s = interval_s
        self.batches = 0  # committed transactions, for benchmarks and tests
        self.bytes_written: int | None = None  # what the worker wrote to files (Linux)
        self._conn = open_database(path, what, check_same_thread=False)
        self._conn.execute("PRAGMA synchronous=FULL")  # one fsync per batch, not per event
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._pending: Batch = {}
        self._unique = itertools.count()
        self._cond = threading.Condition()
        self._urgent = False
        self._closing = False
        self._submitted = 0  # submissions so far; ``_committed`` catches up after each batch
        self._committed = 0
        self._failures = 0
        self._last_commit = clock()
        self._thread = threading.Thread(target=self._run, name=f"write {path.name}", daemon=True)
        self._thread.start()

    def submit(self, *statements: Statement, key: Hashable = None, urgent: bool = False) -> None:
        """Queue statements for one transaction; pending ones with the same ``key`` are
        replaced in place (their position, and so the order of rows, is kept)."""
        with self._cond:
            if self._closing:
                raise RuntimeError(f"{self.path}: the writer is closed")
            first = not self._pending
            self._pending[("unique", next(self._unique)) if key is None else key] = statements
            self._submitted += 1
            if urgent:
                self._urgent = True
            if urgent or first or self._clock() - self._last_commit >= self.interval_s:
                self._cond.notify()  # else the worker already sleeps until the interval is up

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
        """Wait until everything submitted so far is committed (False on timeout)."""
        with self._cond:
            target = self._submitted
            if self._committed >= target:
                return True
            self._urgent = True
            self._cond.notify()
            return self._cond.wait_for(lambda: self._committed >= target, timeout_s)

    def close(self) -> None:
        """Write what is pending, checkpoint and truncate the WAL, close the file."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        self._thread.join(FLUSH_TIMEOUT_S)
        if self._thread.is_alive():
            log.error("%s: the writer did not finish within %.0f s", self.path, FLUSH_TIMEOUT_S)
            return
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.warning("%s: WAL checkpoint at close failed: %s", self.path, exc)
        self._conn.close()

    # ---- the worker ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    self._cond.wait(self._wait_s())  # recomputed after every wake
                batch, self._pending = self._pending, {}
                self._last_commit = self._clock()  # the interval counts from this batch
                seen, self._urgent, closing = self._submitted, False, self._closing
            if batch:
                self._commit(batch, seen)
            with self._cond:
                if closing and not self._pending:
                    self._committed = self._submitted
                    self._cond.notify_all()
                    return

    def _due(self) -> bool:
        if self._closing or (self._urgent and self._pending):
            return True
        if self._urgent and not self._pending:  # a flush with nothing pending
            self._urgent = False
        return bool(self._pending) and self._clock() - self._last_commit >= self.interval_s

    def _wait_s(self) -> float | None:
        if not self._pending:
            return None
        return max(0.0, self.interval_s - (self._clock() - self._last_commit))

    def _commit(self, batch: Batch, seen: int) -> None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statements in batch.values():
                    for sql, params in statements:
                        self._conn.execute(sql, params)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._on_failure(batch, exc)
            return
        if self._failures:
            log.warning("%s: writing works again after %d failed attempts",
                        self.path, self._failures)
            self._failures = 0
        self.batches += 1
        self.bytes_written = thread_bytes_written()
        with self._cond:
            self._committed = max(self._committed, seen)
            self._cond.notify_all()

    def _on_failure(self, batch: Batch, exc: sqlite3.Error) -> None:
        """Keep the batch (newer statements win) and try again after the interval."""
        if self._failures == 0:
            log.error("%s: cannot write (%s); keeping %d changes in memory and retrying every "
                      "%.0f s", self.path, exc, len(batch), self.interval_s)
        self._failures += 1
        with self._cond:
            batch.update(self._pending)
            self._pending = batch
            self._last_commit = self._clock()
            if self._closing:  # nothing more will come: give up on what cannot be written
                log.error("%s: %d changes were not written", self.path, len(self._pending))
                self._pending = {}


def thread_bytes_written() -> int | None:
    """Bytes this thread has handed to write calls (Linux ``/proc/thread-self/io``)."""
    try:
        with open("/proc/thread-self/io", "rb") as io:
            for line in io:
                if line.startswith(b"wchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
