"""SlotLimits and how limits combine: smaller caps and larger minimums win, sources follow."""

from __future__ import annotations

import numpy as np

from energytree.limits import tighten, unlimited, zero


def test_unlimited_restricts_nothing() -> None:
    lim = unlimited(2, "x")
    assert np.all(np.isinf(lim.current_a)) and np.all(np.isinf(lim.power_w))
    assert lim.min_current_a.tolist() == [0, 0]
    assert lim.max_phases.tolist() == [3, 3] and lim.min_phases.tolist() == [1, 1]
    assert lim.slots == 2


def test_zero_allows_nothing() -> None:
    lim = zero(2, "empty")
    assert np.all(lim.current_a == 0) and np.all(lim.power_w == 0)
    assert lim.power_source.tolist() == ["empty", "empty"]


def test_tighten_takes_the_smaller_cap_and_its_source() -> None:
    a, b = unlimited(2, "a"), unlimited(2, "b")
    a.current_a[:] = [[16, 16, 16], [16, 16, 16]]
    b.current_a[:] = [[10, 20, 16], [32, 32, 32]]
    a.power_w[:] = [5000, 9000]
    b.power_w[:] = [7000, 8000]
    a.min_current_a[:] = [6, 0]
    b.min_current_a[:] = [0, 8]
    b.max_phases[:] = [1, 3]
    b.min_phases[:] = [1, 3]
    out = tighten(a, b)
    assert out.current_a.tolist() == [[10, 16, 16], [16, 16, 16]]
    assert out.current_source.tolist() == [["b", "a", "a"], ["a", "a", "a"]], "a tie keeps a"
    assert out.power_w.tolist() == [5000, 8000]
    assert out.power_source.tolist() == ["a", "b"]
    assert out.min_current_a.tolist() == [6, 8]
    assert out.max_phases.tolist() == [1, 3]
    assert out.min_phases.tolist() == [1, 3]
    assert out.current_cap_a().tolist() == [10, 16]


def test_tighten_does_not_modify_its_arguments() -> None:
    a, b = unlimited(1, "a"), zero(1, "b")
    tighten(a, b)
    assert np.all(np.isinf(a.current_a)) and np.all(b.current_a == 0)
