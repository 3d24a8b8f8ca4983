"""A durable, ordered queue of upstream OCPP calls per EVSE, in SQLite.

Every message is written before it is sent and deleted only after the backend's CallResult,
so a lost connection or a restart keeps it, in order. Each message keeps its OCPP message id
for good, so a resend after a lost CallResult carries the same id and the backend can tell
it from a new message. The backend's transaction ids (OCPP 1.6 StartTransaction) are stored
per session in the same transaction that removes the StartTransaction, so StopTransaction and
MeterValues of that session find them even after a restart. Usage::

    box = Outbox(Database(path))
    box.enqueue("evse-1", "1.6", "StartTransaction", payload, session=7)
    head = box.head("evse-1")          # the oldest message of that EVSE
    box.ack(head, transaction_id="4711")
"""

from __future__ import annotations

import json
import sqlite3
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from energytree.sessions import Database

__all__ = ["Message", "Outbox"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE,
        evse TEXT NOT NULL, version TEXT NOT NULL, action TEXT NOT NULL, payload TEXT NOT NULL,
        session INTEGER)""",
    "CREATE INDEX IF NOT EXISTS outbox_evse ON outbox (evse, seq)",
    """CREATE TABLE IF NOT EXISTS transactions (
        session INTEGER PRIMARY KEY, transaction_id TEXT, seq_no INTEGER NOT NULL DEFAULT 0)""",
)


@dataclass(frozen=True)
class Message:
    """One queued call: ``payload`` holds the snake_case fields of ``version.call.<action>``."""

    seq: int  # the order key
    message_id: str  # the OCPP-J unique id, the same on every attempt
    evse: str
    version: str
    action: str
    payload: dict[str, Any]
    session: int | None  # the local session this message belongs to


class Outbox:
    """See the module docstring; all methods join the caller's ``Database.transaction``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        with db.transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    def enqueue(self, evse: str, version: str, action: str, payload: dict[str, Any],
                session: int | None = None) -> Message:
        """Append a message for ``evse``; it is durable when the transaction commits."""
        message_id = str(uuidlib.uuid4())
        text = json.dumps(payload, allow_nan=False)
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO outbox (message_id, evse, version, action, payload, session)"
                " VALUES (?, ?, ?, ?, ?, ?)", (message_id, evse, version, action, text, session))
        assert cur.lastrowid is not None
        return Message(cur.lastrowid, message_id, evse, version, action, payload, session)

    def head(self, evse: str) -> Message | None:
        """The oldest message of ``evse``, which must go before any other of it."""
        row = self.db.conn.execute(
            "SELECT * FROM outbox WHERE evse = ? ORDER BY seq LIMIT 1", (evse,)).fetchone()
        return None if row is None else _message(row)

    def pending(self, evse: str | None = None) -> list[Message]:
        """Queued messages in order (of one EVSE, or all)."""
        query, args = "SELECT seq FROM outbox ORDER BY seq", ()
        if evse is not None:
            query, args = "SELECT seq FROM outbox WHERE evse = ? ORDER BY seq", (evse,)
        seqs = [r["seq"] for r in self.db.conn.execute(query, args)]
        return [m for m in map(self._get, seqs) if m is not None]

    def ack(self, message: Message, transaction_id: str | None = None) -> None:
        """Remove ``message`` after its CallResult, storing the backend's transaction id."""
        with self.db.transaction() as conn:
            if transaction_id is not None and message.session is not None:
                conn.execute(
                    "INSERT INTO transactions (session, transaction_id) VALUES (?, ?)"
                    " ON CONFLICT (session) DO UPDATE SET transaction_id = excluded.transaction_id",
                    (message.session, transaction_id))
            conn.execute("DELETE FROM outbox WHERE seq = ?", (message.seq,))

    def transaction_id(self, session: int) -> str | None:
        """The backend's transaction id of a local session, once its start was answered."""
        row = self.db.conn.execute(
            "SELECT transaction_id FROM transactions WHERE session = ?", (session,)).fetchone()
        return None if row is None else row["transaction_id"]

    def session_of(self, transaction_id: str) -> int | None:
        """The local session the backend knows as ``transaction_id``."""
        row = self.db.conn.execute(
            "SELECT session FROM transactions WHERE transaction_id = ?",
            (transaction_id,)).fetchone()
        return None if row is None else row["session"]

    def next_seq_no(self, session: int) -> int:
        """0, 1, 2, … per session: the OCPP 2.0.1 TransactionEvent seqNo."""
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO transactions (session) VALUES (?)"
                         " ON CONFLICT (session) DO UPDATE SET seq_no = seq_no + 1", (session,))
            row = conn.execute("SELECT seq_no FROM transactions WHERE session = ?",
                               (session,)).fetchone()
        return int(row["seq_no"])

    def _get(self, seq: int) -> Message | None:
        row = self.db.conn.execute("SELECT * FROM outbox WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else _message(row)


def _message(row: sqlite3.Row) -> Message:
    return Message(row["seq"], row["message_id"], row["evse"], row["version"], row["action"],
                   json.loads(row["payload"]), row["session"])
