"""State follows the site file: what it no longer configures is dropped at start, and said."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from energytree.app.runtime import Service
from energytree.app.service import ServiceConfig
from energytree.gridops import power_limit
from energytree.types import OptimizerTarget

ROOT = Path(__file__).resolve().parents[2]
EVSES = [{"evse": "garage", "max_current_A": 16}, {"evse": "carport", "max_current_A": 16}]


def site(evses: list[dict[str, Any]], **sections: Any) -> ServiceConfig:
    return ServiceConfig.model_validate({
        "name": "home", "status_interval_s": 3600,
        "grid": {"uuid": "house", "max_current_A": 35, "children": evses}, **sections})


def test_prices_limits_and_targets_no_longer_configured_are_dropped(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    prices = str(ROOT / "examples" / "prices" / "tou-day.json")
    first = Service(site(EVSES, prices=prices, sunspec={"port": 0}), state)
    first.manager.set_external_limits("sunspec", "house",
                                      power_limit(first.manager_now(), 9000.0))
    first.audit.record("sunspec", first.manager_now(), 9000.0, "W", None, "60 %")
    first.manager.set_target("carport", OptimizerTarget(energy_amount_needed=10.0))
    n_prices = len(first.manager.prices)
    assert n_prices > 0
    first.audit.close()

    caplog.set_level(logging.WARNING)
    again = Service(site(EVSES[:1]), state)  # no prices, no sunspec, no carport
    try:
        assert again.manager.prices == []
        assert "sunspec" not in again.manager.leases.leases
        assert again.audit.rows()[-1]["end"] is not None  # the operator command ended
        messages = [r.getMessage() for r in caplog.records]
        manager_json = state / "manager.json"
        assert f"{manager_json}: dropping {n_prices} saved prices: the site file has no " \
            "prices line" in messages
        assert f"{manager_json}: dropping the saved sunspec limit: the site file has no " \
            "sunspec section" in messages
        assert f"{manager_json}: dropping the target of EVSE 'carport': the tree has no " \
            "such EVSE" in messages
    finally:
        again.audit.close()
