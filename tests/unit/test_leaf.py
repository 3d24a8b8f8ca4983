"""LimitReceiver: an EVSE applies its limit until it expires, then falls back at once."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from energytree.clock import ManualClock
from energytree.errors import NotFoundError
from energytree.leaf import LimitReceiver
from energytree.types import EnforcedLimits, LimitsRes
from tests.builders import NOW


def limits(amps: float, *, uuid: str = "evse-1", valid_s: float | None = 10.0,
           valid_for: int | None = None, phases: int = 3) -> EnforcedLimits:
    until = None if valid_s is None else NOW + timedelta(seconds=valid_s)
    return EnforcedLimits(uuid=uuid, valid_until=until, valid_for=valid_for,
                          limits_root_side=LimitsRes(ac_max_current_A=amps,
                                                     ac_max_phase_count=phases))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def test_nothing_received_means_the_fallback(clock: ManualClock) -> None:
    leaf = LimitReceiver("evse-1", clock=clock)
    assert leaf.expired
    assert leaf.current_a() == 0.0
    assert LimitReceiver("evse-1", fallback_a=6.0, clock=clock).current_a() == 6.0


def test_a_limit_holds_until_valid_until_then_falls_back(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    leaf = LimitReceiver("evse-1", clock=clock)
    leaf.apply(limits(13.5))
    assert leaf.current_a() == 13.5
    assert leaf.limits().ac_max_phase_count == 3
    clock.advance(9.999)
    assert leaf.current_a() == 13.5
    clock.advance(0.001)  # valid_until itself: no longer valid
    assert leaf.expired
    assert leaf.current_a() == 0.0
    assert leaf.limits() == LimitsRes(ac_max_current_A=0.0)
    leaf.current_a()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["EVSE evse-1: power budget expired, falling back to 0.0 A"]  # once


def test_fallback_is_the_configured_safe_current(clock: ManualClock) -> None:
    leaf = LimitReceiver("evse-1", fallback_a=8.0, clock=clock)
    leaf.apply(limits(16.0))
    clock.advance(10)
    assert leaf.current_a() == 8.0


def test_a_fresh_limit_renews_the_deadline(clock: ManualClock) -> None:
    leaf = LimitReceiver("evse-1", clock=clock)
    leaf.apply(limits(10.0))
    clock.advance(8)
    leaf.apply(limits(12.0, valid_s=18))
    clock.advance(8)  # 16 s after the first limit, 8 s after the second
    assert leaf.current_a() == 12.0
    clock.advance(2)
    assert leaf.current_a() == 0.0
    leaf.apply(limits(7.0, valid_s=28))  # after a fallback a fresh limit applies again
    assert leaf.current_a() == 7.0


@pytest.mark.parametrize(
    ("valid_s", "valid_for", "expires_after_s"),
    [
        pytest.param(10.0, None, 10.0, id="valid_until"),
        pytest.param(None, 5, 5.0, id="valid_for from receipt"),
        pytest.param(10.0, 4, 4.0, id="the earlier of both"),
        pytest.param(3.0, 60, 3.0, id="valid_until earlier than valid_for"),
    ],
)
def test_deadline_is_the_earlier_of_valid_until_and_valid_for(
    clock: ManualClock, valid_s: float | None, valid_for: int | None, expires_after_s: float
) -> None:
    leaf = LimitReceiver("evse-1", clock=clock)
    leaf.apply(limits(10.0, valid_s=valid_s, valid_for=valid_for))
    clock.advance(expires_after_s - 0.01)
    assert leaf.current_a() == 10.0
    clock.advance(0.01)
    assert leaf.current_a() == 0.0


def test_an_already_expired_limit_is_ignored(clock: ManualClock) -> None:
    leaf = LimitReceiver("evse-1", clock=clock)
    leaf.apply(limits(10.0))
    leaf.apply(limits(32.0, valid_s=0))
    leaf.apply(limits(32.0, valid_s=-5))
    assert leaf.current_a() == 10.0


def test_limits_for_another_evse_are_refused(clock: ManualClock) -> None:
    leaf = LimitReceiver("evse-1", clock=clock)
    leaf.apply(limits(10.0))
    with pytest.raises(NotFoundError, match="'evse-2'"):
        leaf.apply(limits(32.0, uuid="evse-2"))
    assert leaf.current_a() == 10.0


def test_an_export_limit_allows_no_import(clock: ManualClock) -> None:
    leaf = LimitReceiver("evse-1", clock=clock)
    leaf.apply(limits(-10.0))
    assert leaf.limits().ac_max_current_A == -10.0
    assert leaf.current_a() == 0.0
