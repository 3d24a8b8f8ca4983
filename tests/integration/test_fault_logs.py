"""Faults are logged when they start and when they end, through the running service."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from energytree.app.runtime import Service
from energytree.app.service import ServiceConfig


async def test_a_formula_fault_is_one_line_when_it_starts_and_one_when_it_ends(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = ServiceConfig.model_validate({
        "name": "home", "tick_s": 0.05, "plan_budget_s": 1, "status_interval_s": 3600,
        "grid": {"uuid": "house", "max_current_A": 35, "max_power_W": "22000 * CM.AVAIL / 100",
                 "children": [{"evse": "garage", "max_current_A": 16}]}})
    caplog.set_level(logging.WARNING, logger="energytree.app.runtime")

    def lines(text: str) -> list[str]:
        return [r.getMessage() for r in caplog.records if text in r.getMessage()]

    async def until(text: str) -> None:
        async with asyncio.timeout(60):
            while not lines(text):
                await asyncio.sleep(0.05)

    service = Service(config, tmp_path / "state", simulate=True)
    try:
        await service.start()
        await until("failed")
        service.variables.set_many([("AVAIL", 50)])
        await until("works again")
        await asyncio.sleep(0.5)  # ten more ticks: nothing more is said
    finally:
        await service.stop()
    (failed,) = lines("failed")
    assert failed.startswith("formula max_power_W of house failed (")
    assert lines("works again") == ["formula max_power_W of house works again (recovered): 11000"]
