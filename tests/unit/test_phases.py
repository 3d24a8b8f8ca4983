"""1/3-phase switching hysteresis: down at once, up only after it fitted long enough."""

from __future__ import annotations

import numpy as np
import pytest

from energytree.phases import PhaseSwitcher, SwitchingOptions

MIN_THREE_W = 6 * 3 * 230.0  # 4140 W: three phases at the 6 A minimum
HYST_W, HYST_S = 200.0, 600.0


def switcher(**options: float) -> PhaseSwitcher:
    return PhaseSwitcher(SwitchingOptions(**{"power_hysteresis_w": HYST_W,
                                             "time_hysteresis_s": HYST_S, **options}))


def choose(s: PhaseSwitcher, budget_w: float, now_s: float, evse: int = 0) -> int:
    return s.choose(evse, budget_w, MIN_THREE_W, 3, 1, now_s)


def test_starts_on_three_phases_and_drops_to_one_at_once() -> None:
    s = switcher()
    assert choose(s, 11_000, 0) == 3
    assert choose(s, MIN_THREE_W - 1, 1) == 1


@pytest.mark.parametrize(
    ("budgets", "expected"),
    [
        pytest.param([(0, 5_000), (599, 5_000)], 1, id="599 s is not enough"),
        pytest.param([(0, 5_000), (600, 5_000)], 3, id="600 s with room: back to three"),
        pytest.param([(0, MIN_THREE_W + HYST_W), (600, MIN_THREE_W + HYST_W)], 3,
                     id="exactly the hysteresis to spare counts"),
        pytest.param([(0, MIN_THREE_W + 100), (600, MIN_THREE_W + 100)], 1,
                     id="fits but not with the hysteresis to spare"),
        pytest.param([(0, 5_000), (300, 3_000), (301, 5_000), (700, 5_000)], 1,
                     id="a dip below the minimum restarts the clock"),
        pytest.param([(0, 5_000), (300, 3_000), (301, 5_000), (901, 5_000)], 3,
                     id="600 s after the dip"),
        pytest.param([(0, 5_000), (300, MIN_THREE_W + 50), (301, 5_000), (700, 5_000)], 1,
                     id="a dip into the hysteresis band interrupts too"),
    ],
)
def test_going_back_up_waits_for_the_time_hysteresis(budgets: list[tuple[float, float]],
                                                     expected: int) -> None:
    s = switcher()
    assert choose(s, 1_000, -1) == 1  # on one phase
    for now_s, budget_w in budgets:
        phases = choose(s, budget_w, now_s)
    assert phases == expected


def test_in_the_band_the_phase_count_is_kept() -> None:
    s = switcher()
    band = MIN_THREE_W + HYST_W / 2
    assert choose(s, band, 0) == 3  # on three phases: stays
    assert choose(s, 1_000, 1) == 1
    assert choose(s, band, 2) == 1  # on one phase: stays


def test_max_switches_bounds_the_switches_per_session() -> None:
    s = switcher(max_switches=2, time_hysteresis_s=0)
    assert choose(s, 1_000, 0) == 1  # switch 1
    assert choose(s, 5_000, 1) == 3  # switch 2
    assert choose(s, 1_000, 2) == 3  # a third switch is refused
    s.forget(0)  # the session ended; the next starts afresh
    assert choose(s, 1_000, 3) == 1


def test_evses_are_independent_and_forget_resets_one() -> None:
    s = switcher()
    assert choose(s, 1_000, 0, evse=0) == 1
    assert choose(s, 11_000, 0, evse=1) == 3
    s.forget(0)
    assert choose(s, 11_000, 1, evse=0) == 3  # a new session starts on three phases at once


@pytest.mark.parametrize(("max_phases", "min_phases"), [(1, 1), (3, 3), (2, 2)])
def test_non_switchable_ranges_keep_the_maximum(max_phases: int, min_phases: int) -> None:
    s = switcher()
    assert s.choose(0, 0.0, MIN_THREE_W, max_phases, min_phases, 0) == max_phases
    assert s.phases == {}


def test_hints_overlay_remembered_counts_on_the_default() -> None:
    s = switcher()
    choose(s, 1_000, 0, evse=1)
    choose(s, 1_000, 0, evse=7)  # beyond the tree (it shrank): ignored
    hints = s.hints(3, np.array([3, 3, 1]))
    assert hints.tolist() == [3, 1, 1]
