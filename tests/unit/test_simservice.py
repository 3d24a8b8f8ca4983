"""The simulated site of ``serve --simulate`` keeps its registers in the state directory."""

from __future__ import annotations

import logging
from datetime import UTC
from pathlib import Path

import pytest

from energytree.app.service import ServiceConfig
from energytree.app.simservice import SiteSimulation
from energytree.manager import EnergyManager
from energytree.site import site_request

CONFIG = ServiceConfig.model_validate({
    "grid": {"uuid": "house", "max_current_A": 35, "children": [
        {"evse": "garage", "max_current_A": 16, "phase_rotation": "L3L1L2"}]},
    "simulation": {"cars": {"garage": {"phases": 1, "soc_percent": 40, "lag_s": 2.5}}},
})


def simulation(path: Path) -> SiteSimulation:
    manager = EnergyManager(lambda now: site_request(CONFIG, now))
    return SiteSimulation(CONFIG, manager, path, UTC)


def test_the_site_file_shapes_the_simulated_evse(tmp_path: Path) -> None:
    sim = simulation(tmp_path / "simulation.json").evses["garage"]
    assert (sim.phase_rotation, sim.can_switch_phases) == ("L3L1L2", False)
    assert sim.car is not None and (sim.car.phases, sim.car.lag_s) == (1, 2.5)


def test_registers_and_charge_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "simulation.json"
    first = simulation(path)
    first.evses["garage"].import_wh = 1234.5
    assert first.evses["garage"].car is not None
    first.evses["garage"].car.soc_percent = 55.0
    first.save()
    again = simulation(path).evses["garage"]
    assert again.import_wh == 1234.5
    assert again.car is not None and again.car.soc_percent == 55.0


@pytest.mark.parametrize("text", [
    "{not json", "[]", '{"meter_wh": {"import": -5, "export": 0}, "evses": {}}',
    '{"meter_wh": {"import": 1, "export": 0}, "evses": {"garage": {"import_wh": "x"}}}',
])
def test_a_bad_state_file_is_named_and_changes_nothing(
        tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "simulation.json"
    path.write_text(text, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        sim = simulation(path)
    assert "simulation state not restored" in caplog.text and str(path) in caplog.text
    assert sim.evses["garage"].import_wh == 0.0
    assert sim.evses["garage"].car is not None and sim.evses["garage"].car.soc_percent == 40.0
