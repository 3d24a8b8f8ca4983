"""The outbox: durable, ordered per EVSE, acknowledged once, transaction ids kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.ocpp.outbox import Outbox
from energytree.sessions import Database


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.sqlite"


@pytest.fixture
def box(path: Path) -> Iterator[Outbox]:
    db = Database(path)
    yield Outbox(db)
    db.close()


def test_messages_come_out_in_order_per_evse(box: Outbox) -> None:
    for k in range(3):
        box.enqueue("a", "1.6", "MeterValues", {"k": k})
        box.enqueue("b", "1.6", "MeterValues", {"k": 10 + k})
    assert [m.payload["k"] for m in box.pending("a")] == [0, 1, 2]
    assert [m.payload["k"] for m in box.pending()] == [0, 10, 1, 11, 2, 12]
    head = box.head("b")
    assert head is not None and head.payload == {"k": 10}


def test_ack_removes_exactly_one_and_the_id_stays_the_same(box: Outbox) -> None:
    first = box.enqueue("a", "1.6", "StartTransaction", {"meter_start": 1}, session=7)
    box.enqueue("a", "1.6", "StopTransaction", {"meter_stop": 2}, session=7)
    again = box.head("a")
    assert again == first  # a resend uses the stored message id
    box.ack(first, transaction_id="4711")
    box.ack(first)  # a second ack of the same message changes nothing
    assert [m.action for m in box.pending("a")] == ["StopTransaction"]
    assert box.transaction_id(7) == "4711" and box.session_of("4711") == 7


def test_a_restart_keeps_messages_order_and_transaction_ids(path: Path) -> None:
    db = Database(path)
    box = Outbox(db)
    start = box.enqueue("a", "1.6", "StartTransaction", {}, session=1)
    ids = [box.enqueue("a", "1.6", "MeterValues", {"k": k}, session=1).message_id
           for k in range(3)]
    box.ack(start, transaction_id="99")
    db.close()
    reopened = Database(path)
    box = Outbox(reopened)
    assert [m.message_id for m in box.pending("a")] == ids
    assert box.transaction_id(1) == "99"
    reopened.close()


def test_an_enqueue_in_a_rolled_back_transaction_is_gone(path: Path) -> None:
    db = Database(path)
    box = Outbox(db)
    with pytest.raises(RuntimeError), db.transaction():
        box.enqueue("a", "1.6", "MeterValues", {})
        raise RuntimeError("crash before commit")
    assert box.pending() == []
    db.close()


def test_seq_no_counts_per_session_across_restarts(path: Path) -> None:
    db = Database(path)
    box = Outbox(db)
    assert [box.next_seq_no(1), box.next_seq_no(1), box.next_seq_no(2)] == [0, 1, 0]
    db.close()
    db = Database(path)
    assert Outbox(db).next_seq_no(1) == 2
    db.close()


def test_the_seq_no_counter_and_a_transaction_id_share_the_row(box: Outbox) -> None:
    box.next_seq_no(3)
    start = box.enqueue("a", "1.6", "StartTransaction", {}, session=3)
    box.ack(start, transaction_id="12")
    assert (box.transaction_id(3), box.next_seq_no(3)) == ("12", 1)
