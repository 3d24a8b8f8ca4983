"""Site formulas: limits per node, the §14a floor at the root, and faults said once."""

from __future__ import annotations

import logging

import pytest

from energytree.formulaterms import MappingEnvironment
from energytree.site import GridConfig
from energytree.siteformulas import FORMULA, SiteFormulas
from tests.builders import NOW

GRID = GridConfig.model_validate({
    "uuid": "house", "max_current_A": 35, "max_power_W": "22000 * CM.AVAIL / 100",
    "children": [{"fuse": "garage-fuse", "max_current_A": "CM.FUSE", "children": [
        {"evse": "garage", "max_current_A": 16, "charging_rule": "CM.TARIF == 1 ? 16000 : 6000"}]}],
})
FLOOR_W = 4200.0


def limits(values: dict[str, float], formulas: SiteFormulas) -> dict[str, object]:
    env = MappingEnvironment(values, now=NOW)
    found = {}
    for source in formulas.sources(NOW, env, FLOOR_W):
        assert source.name == FORMULA
        entry = source.limits.schedule_import[0].limits_to_root
        found[source.node_uuid] = entry.total_power_W or entry.ac_max_current_A
    return found


def test_each_formula_limits_its_node_and_a_charging_rule_is_in_milliamperes() -> None:
    formulas = SiteFormulas(GRID, 230.0)
    got = limits({"CM.AVAIL": 50.0, "CM.FUSE": 20.0, "CM.TARIF": 1.0}, formulas)
    assert got == {"house": 11000.0, "garage-fuse": 20.0, "garage": 16.0}


def test_the_root_keeps_the_floor_and_a_failing_formula_allows_nothing() -> None:
    got = limits({"CM.AVAIL": 0.0}, SiteFormulas(GRID, 230.0))  # CM.FUSE, CM.TARIF unset
    assert got == {"house": FLOOR_W, "garage-fuse": 0.0, "garage": 0.0}


def test_a_fault_is_said_once_again_after_a_change_and_its_end_once(
        caplog: pytest.LogCaptureFixture) -> None:
    formulas = SiteFormulas(GRID, 230.0)
    caplog.set_level(logging.WARNING, logger="energytree.siteformulas")
    values = {"CM.AVAIL": 50.0, "CM.TARIF": 1.0}
    for _ in range(3):
        limits(values, formulas)
    formulas.variables_changed()
    limits(values, formulas)
    limits({**values, "CM.FUSE": 20.0}, formulas)
    limits({**values, "CM.FUSE": 20.0}, formulas)
    said = [r.getMessage() for r in caplog.records]
    assert [m.split(" (")[0] for m in said] == [
        "formula max_current_A of garage-fuse failed",
        "formula max_current_A of garage-fuse failed",
        "formula max_current_A of garage-fuse works again"]
