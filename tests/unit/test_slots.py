"""The slot grid: uniform from now on the wall-clock grid, plus every breakpoint."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from energytree.slots import MAX_SLOTS, build_grid
from tests.builders import at

START = datetime(2026, 11, 23, 12, 7, tzinfo=UTC)


def _starts(grid) -> list[str]:
    return [grid.start_time(i).strftime("%H:%M") for i in range(len(grid))]


def test_uniform_on_the_wall_clock_grid_from_now() -> None:
    grid = build_grid(START, 3600, 900)
    assert _starts(grid) == ["12:07", "12:15", "12:30", "12:45", "13:00"]
    assert grid.ends[-1] - grid.starts[0] == 3600
    assert grid.durations_s.tolist() == [480, 900, 900, 900, 420]
    assert grid.hours.sum() == pytest.approx(1.0)


def test_now_on_a_boundary_gives_no_empty_slot() -> None:
    grid = build_grid(at(0), 3600, 900)
    assert _starts(grid) == ["12:00", "12:15", "12:30", "12:45"]
    assert grid.now == at(0)


def test_breakpoints_split_slots_and_outside_ones_are_ignored() -> None:
    points = [at(20), at(30), at(-10), at(0), at(60), at(200)]
    grid = build_grid(at(0), 3600, 900, points)
    assert _starts(grid) == ["12:00", "12:15", "12:20", "12:30", "12:45"]


def test_index_at() -> None:
    grid = build_grid(at(0), 3600, 900)
    assert grid.index_at(at(16)) == 1
    assert grid.index_at(at(15)) == 1, "slots are half-open: a boundary starts the next slot"
    assert grid.index_at(at(-5)) == 0
    assert grid.index_at(at(500)) == 3


@pytest.mark.parametrize(
    ("horizon_s", "slot_s"),
    [(0, 900), (3600, 0), (-1, 900), (MAX_SLOTS * 60 + 60, 60)],
)
def test_bad_grids_are_rejected(horizon_s, slot_s) -> None:
    with pytest.raises(ValueError):
        build_grid(at(0), horizon_s, slot_s)


def test_too_many_breakpoints_are_rejected() -> None:
    points = [at(i / 100) for i in range(1, MAX_SLOTS + 10)]
    with pytest.raises(ValueError, match="breakpoints"):
        build_grid(at(0), 3600, 900, points)
