"""The planning benchmark (``bench/__main__.py``) on its smallest size: the row is sane.

Only the figures of the plan are checked, never the timings (they depend on the machine).
"""

from __future__ import annotations

import math

import pytest

import bench.__main__ as bench

FIELDS = {"N", "plan_s", "bare_lp_s", "ratio", "cost_eur", "lp_bound_eur", "gap_pct",
          "viol_now", "viol_all", "unmet_kwh", "at_once_eur", "saving_pct", "method"}


@pytest.fixture(scope="module")
def row() -> dict:
    return bench.run(10)


def test_row_has_every_column(row: dict) -> None:
    assert set(row) == FIELDS
    assert row["N"] == 10
    assert row["method"] == "optimiser"
    assert all(math.isfinite(v) for k, v in row.items() if k != "method")


def test_plan_is_no_better_than_its_lp_bound_and_keeps_minimum_currents(row: dict) -> None:
    assert row["gap_pct"] >= -1e-6
    assert row["cost_eur"] >= row["lp_bound_eur"] - 1e-6
    assert row["viol_now"] == 0
    assert row["viol_all"] == 0


def test_plan_beats_charging_at_once(row: dict) -> None:
    assert row["unmet_kwh"] >= 0.0
    assert 0.0 < row["cost_eur"] <= row["at_once_eur"] + 1e-6
    assert row["saving_pct"] == pytest.approx(
        100 * (row["at_once_eur"] - row["cost_eur"]) / row["at_once_eur"])


def test_end_to_end_row_has_every_figure() -> None:
    import bench.endtoend as endtoend

    row = endtoend.run(10)
    assert set(row) == set(endtoend.HEADER)
    assert all(math.isfinite(v) and v >= -1e-6 for v in row.values())
    assert row["unmet_kwh"] <= row["lp_unmet_kwh"] + 1e-3  # the repair strands nothing here
    assert row["solves"] >= 1
