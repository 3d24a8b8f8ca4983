"""What the CSMS keeps between connections: round trip, the older file, corrupt files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.ocpp.charger_limits import Grant, Pushed, dump_pushed
from adapters.ocpp.charger_memory import ChargerMemory, is_drawing
from energytree.errors import ConfigError
from energytree.persist import read_json
from energytree.types import EvseState

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PUSHED = {"A-1": Pushed(Grant(16.0, 3), NOW, None, 2)}


async def test_saved_and_loaded_unchanged(tmp_path: Path) -> None:
    memory = ChargerMemory(dict(PUSHED), {"A": {"tx-1": 1}, "B": {}},
                           {"A-1": EvseState.Charging, "B-1": EvseState.Unplugged})
    path = tmp_path / "csms.json"
    await memory.save(path)
    again = ChargerMemory.load(read_json(path))
    assert (again.pushed, again.transactions, again.states) == (
        PUSHED, {"A": {"tx-1": 1}}, memory.states)  # chargers without transactions drop out


def test_the_older_file_of_accepted_limits_still_loads() -> None:
    memory = ChargerMemory.load(dump_pushed(PUSHED))
    assert (memory.pushed, memory.transactions, memory.states) == (PUSHED, {}, {})


@pytest.mark.parametrize("data", [
    {"pushed": {}, "states": {"A-1": "Exploded"}},
    {"pushed": {}, "transactions": {"A": {"tx-1": "one"}}},
    {"pushed": {"A-1": {"current_a": 16}}},
    [1, 2],
])
def test_a_corrupt_file_is_a_clear_error(data: object) -> None:
    with pytest.raises(ConfigError, match="unreadable charger state"):
        ChargerMemory.load(data)


def test_drawing_means_a_transaction_or_an_active_state() -> None:
    assert is_drawing(EvseState.Unplugged, in_transaction=True)
    assert is_drawing(EvseState.PausedEV, in_transaction=False)
    assert not is_drawing(EvseState.Unplugged, in_transaction=False)
    assert not is_drawing(None, in_transaction=False)
