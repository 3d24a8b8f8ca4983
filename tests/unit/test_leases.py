"""External limits as leases: separate sources, TTL, failsafe, persistence round trip."""

from __future__ import annotations

from datetime import timedelta

import pytest

from energytree import leases
from energytree.errors import RequestError
from energytree.leases import Lease, LeaseBook
from energytree.problem import ExternalSource
from energytree.types import ExternalLimits
from tests.builders import NOW, entry


def amps(value: float) -> ExternalLimits:
    return ExternalLimits(schedule_import=[entry(NOW, value)])


def watts(value: float) -> ExternalLimits:
    return ExternalLimits(schedule_import=[entry(NOW, power_w=value)])


def test_sources_are_kept_separately() -> None:
    book = LeaseBook.empty()
    book.set("dso", "grid", amps(20), NOW)
    book.set("ocpp", "grid", watts(11_000), NOW)
    book.set("dso", "grid", amps(16), NOW)  # renewing one source leaves the other alone
    assert book.sources(NOW) == [ExternalSource("dso", "grid", amps(16)),
                                 ExternalSource("ocpp", "grid", watts(11_000))]
    assert book.clear("dso")
    assert not book.clear("dso")
    assert [s.name for s in book.sources(NOW)] == ["ocpp"]


def test_without_ttl_a_lease_never_expires() -> None:
    book = LeaseBook.empty()
    lease = book.set("dso", "grid", amps(20), NOW)
    assert lease.expires_at is None
    assert lease.in_force(NOW + timedelta(days=400)) == amps(20)
    assert book.next_expiry(NOW) is None


def test_an_expired_lease_falls_back_to_its_failsafe() -> None:
    book = LeaseBook.empty()
    lease = book.set("dso", "grid", amps(20), NOW, ttl_s=60, failsafe=amps(6))
    assert lease.expires_at == NOW + timedelta(seconds=60)
    assert book.next_expiry(NOW) == lease.expires_at
    assert book.sources(NOW + timedelta(seconds=59.9)) == [ExternalSource("dso", "grid",
                                                                           amps(20))]
    later = NOW + timedelta(seconds=60)  # expires_at itself is already past the lease
    assert lease.expired(later)
    assert book.sources(later) == [ExternalSource("dso", "grid", amps(6))]
    assert book.next_expiry(later) is None


def test_an_expired_lease_without_failsafe_disappears() -> None:
    book = LeaseBook.empty()
    book.set("api", "grid", amps(20), NOW, ttl_s=5)
    assert book.sources(NOW + timedelta(seconds=5)) == []
    assert "api" in book.leases  # still listed (status shows it), but restricts nothing


def test_renewing_extends_the_lease() -> None:
    book = LeaseBook.empty()
    book.set("api", "grid", amps(20), NOW, ttl_s=10)
    book.set("api", "grid", amps(20), NOW + timedelta(seconds=8), ttl_s=10)
    assert book.sources(NOW + timedelta(seconds=15)) == [ExternalSource("api", "grid",
                                                                        amps(20))]


@pytest.mark.parametrize("ttl_s", [0, -1, 366 * 86_400 + 1, float("nan"), float("inf")])
def test_ttl_out_of_range_is_refused(ttl_s: float) -> None:
    book = LeaseBook.empty()
    with pytest.raises(RequestError, match="ttl_s"):
        book.set("api", "grid", amps(20), NOW, ttl_s=ttl_s)
    assert book.leases == {}


@pytest.mark.parametrize("name", ["", "with space", "x" * 241, "back\\slash", "ümlaut"])
def test_a_bad_source_name_is_a_request_error_naming_the_field(name: str) -> None:
    book = LeaseBook.empty()
    with pytest.raises(RequestError, match="name"):
        book.set(name, "grid", amps(20), NOW)
    assert book.leases == {}


def test_the_number_of_sources_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert leases.MAX_SOURCES >= 1_000  # one per EVSE is normal
    monkeypatch.setattr(leases, "MAX_SOURCES", 3)
    book = LeaseBook.empty()
    for i in range(3):
        book.set(f"s{i}", "grid", amps(20), NOW)
    with pytest.raises(RequestError, match="at most 3"):
        book.set("one-more", "grid", amps(20), NOW)
    book.set("s0", "grid", amps(10), NOW)  # renewing an existing one is still fine
    assert len(book.leases) == 3


def test_names_may_carry_a_path() -> None:
    book = LeaseBook.empty()
    book.set("ocpp/supplier:evse-1", "grid", amps(20), NOW)
    assert "ocpp/supplier:evse-1" in book.leases


def test_dump_and_load_round_trip() -> None:
    book = LeaseBook.empty()
    book.set("dso", "grid", amps(20), NOW, ttl_s=60, failsafe=amps(6))
    book.set("ocpp", "fuse-1", watts(7_000), NOW)
    again = LeaseBook.load(book.dump())
    assert again == book
    assert isinstance(again.leases["dso"], Lease)


def test_the_applied_value_its_unit_and_until_when() -> None:
    steps = ExternalLimits(schedule_import=[entry(NOW, 20), entry(NOW + timedelta(hours=1), 10)])
    book = LeaseBook.empty()
    lease = book.set("dso", "grid", steps, NOW, ttl_s=7200, failsafe=watts(4200))
    applied = lease.applied(NOW + timedelta(minutes=1))
    assert applied == leases.AppliedLimit(20, "A", NOW + timedelta(hours=1))
    assert lease.applied(NOW + timedelta(minutes=61)) == leases.AppliedLimit(
        10, "A", NOW + timedelta(hours=2))  # the lease ends before any further step
    expired = NOW + timedelta(hours=3)
    assert lease.applied(expired) == leases.AppliedLimit(4200, "W", None)
    assert lease.in_failsafe(expired) and not lease.in_failsafe(NOW)
    assert lease.applied(NOW - timedelta(seconds=1)) is None  # not started yet


def test_a_source_may_say_it_applies_its_own_failsafe() -> None:
    lease = LeaseBook.empty().set("ocpp", "grid", watts(9000), NOW, own_failsafe=True)
    assert lease.in_failsafe(NOW) and not lease.expired(NOW)
    assert LeaseBook.load(LeaseBook({"ocpp": lease}).dump()).leases["ocpp"].own_failsafe
