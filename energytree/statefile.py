"""The manager's state file: leases, targets and prices, written atomically."""

from __future__ import annotations

from pathlib import Path

from energytree.errors import ConfigError
from energytree.leases import LeaseBook
from energytree.persist import read_json, write_json_atomic
from energytree.types import OptimizerTarget, PricePerKwh

__all__ = ["load_state", "save_state"]

Targets = dict[str, OptimizerTarget | None]


def save_state(path: Path, leases: LeaseBook, targets: Targets,
               prices: list[PricePerKwh]) -> None:
    state = {
        "leases": leases.dump(),
        "targets": {
            uuid: None if t is None else t.model_dump(mode="json", exclude_none=True)
            for uuid, t in targets.items()
        },
        "prices": [p.model_dump(mode="json") for p in prices],
    }
    write_json_atomic(path, state)


def load_state(path: Path) -> tuple[LeaseBook, Targets, list[PricePerKwh]] | None:
    """The saved state, or None without a file; a corrupt file is a ConfigError naming it."""
    data = read_json(path)
    if data is None:
        return None
    try:
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        leases = LeaseBook.load(data.get("leases", []))
        targets = {
            uuid: None if t is None else OptimizerTarget.model_validate(t)
            for uuid, t in data.get("targets", {}).items()
        }
        prices = [PricePerKwh.model_validate(p) for p in data.get("prices", [])]
    except Exception as exc:
        raise ConfigError(f"{path}: unreadable manager state: {exc}") from exc
    return leases, targets, prices
