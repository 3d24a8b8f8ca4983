"""The terminal status: the granted limit and, beside it, what the EVSE was measured drawing."""

from __future__ import annotations

from datetime import UTC

from energytree.app.statusview import render_status
from energytree.status import EvseStatus, Status
from tests.builders import NOW


def test_measured_phases_and_power_stand_beside_the_grant() -> None:
    carport = EvseStatus("carport", "Charging", 30.0, 1, 6_900.0, "plan", None, 0.0, 0.0,
                         drawn_phases=1, drawn_w=2_300.0)
    garage = EvseStatus("garage", "Charging", 16.0, 3, 11_040.0, "own", None, 0.0, 0.0)
    text = render_status(Status(NOW, [carport, garage], [], None, "optimiser", [], NOW), UTC)
    rows = {line.split()[0]: line for line in text.splitlines()[2:]}
    assert rows["carport"].split()[2:8] == ["30.0", "1", "6.90", "2.30", "1ph", "-"]
    assert rows["garage"].split()[2:7] == ["16.0", "3", "11.04", "-", "-"]
