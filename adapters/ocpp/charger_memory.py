"""What the CSMS remembers about its chargers between connections and across restarts.

A connection can drop in the middle of a transaction, and energytree itself can restart. What
the next connection needs is kept here, in one JSON file written atomically:

* the limit each EVSE last accepted (what an offline charger goes on enforcing by itself),
* the running transactions, transaction id → connector per charger: a 2.0.1
  ``TransactionEvent Updated`` may name only the transaction (E01.FR.16), a 1.6
  ``StopTransaction`` always does,
* each EVSE's last state, so that a restart knows which EVSEs were drawing.

Usage::

    memory = ChargerMemory.load(read_json(path))     # None (no file yet) gives an empty one
    memory.transactions_of("A")["tx-1"] = 1
    await memory.save(path)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.ocpp.charger_limits import Pushed, dump_pushed, load_pushed
from energytree.errors import ConfigError
from energytree.persist import write_json_atomic
from energytree.sessions import ACTIVE_STATES
from energytree.types import EvseState

__all__ = ["ChargerMemory", "is_drawing"]


def is_drawing(state: EvseState | None, in_transaction: bool) -> bool:
    """May the EVSE draw power now? In a transaction or an active state (a paused car may
    resume at the charger's last limit while we cannot see it)."""
    return in_transaction or state in ACTIVE_STATES


@dataclass
class ChargerMemory:
    """Accepted limits by EVSE uuid, transactions by charger id, last states by EVSE uuid."""

    pushed: dict[str, Pushed] = field(default_factory=dict)
    transactions: dict[str, dict[str, int]] = field(default_factory=dict)
    states: dict[str, EvseState] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)

    def transactions_of(self, charger_id: str) -> dict[str, int]:
        """The charger's running transactions (id → connector); the dict is shared, edit it."""
        return self.transactions.setdefault(charger_id, {})

    def dump(self) -> dict[str, Any]:
        return {"pushed": dump_pushed(self.pushed),
                "transactions": {c: dict(t) for c, t in self.transactions.items() if t},
                "states": {uuid: str(state) for uuid, state in self.states.items()}}

    @classmethod
    def load(cls, data: object) -> ChargerMemory:
        """``dump``'s data back (or the older file of accepted limits only); ConfigError if
        it is neither."""
        if data is None:
            return cls()
        if not isinstance(data, dict) or "pushed" not in data:
            return cls(pushed=load_pushed(data))
        try:
            transactions = {str(charger): {str(tx): int(connector)
                                           for tx, connector in found.items()}
                            for charger, found in data.get("transactions", {}).items()}
            states = {str(uuid): EvseState(state)
                      for uuid, state in data.get("states", {}).items()}
        except (AttributeError, TypeError, ValueError) as exc:
            raise ConfigError(f"unreadable charger state: {exc!r}") from exc
        return cls(load_pushed(data["pushed"]), transactions, states)

    async def save(self, path: Path) -> None:
        """Write the newest state (one writer at a time, so an older one never lands last)."""
        async with self._lock:
            await asyncio.to_thread(write_json_atomic, path, self.dump())
