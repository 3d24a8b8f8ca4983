"""The names formulas can read at a live site (cFos-compatible), computed from current facts.

``M1`` is the grid meter, ``E1``, ``E2`` … the EVSEs in tree order, ``PB.input1/2`` the
ripple-control contacts, ``CM.*`` the variables (resolved by the variable store) and a few
predefined ``CM._*`` values, ``GM.*`` the global meters. Currents are in mA, as in cFos.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

__all__ = ["LiveFacts", "SiteEnvironment", "facts_to_names"]

CFOS_STATE = {
    "Unplugged": 1, "WaitForAuth": 2, "WaitForEnergy": 2, "PrepareCharging": 2, "PausedEV": 2,
    "PausedEVSE": 2, "Finished": 2, "Charging": 3, "Disabled": 6,
}


@dataclass(frozen=True)
class EvseFacts:
    state: str | None
    current_a: tuple[float, float, float]
    power_w: float
    offered_a: float
    min_current_a: float
    max_current_a: float
    import_wh: float | None
    soc: float | None


@dataclass(frozen=True)
class LiveFacts:
    """A snapshot of what formulas may read."""

    meter_current_a: tuple[float, float, float] | None
    meter_power_w: float | None
    meter_import_wh: float | None
    evses: Sequence[EvseFacts]
    inputs: tuple[float | None, float | None]
    price: float | None
    max_total_current_a: float | None


def _meter(prefix: str, current: Sequence[float] | None, power: float | None,
           import_wh: float | None) -> dict[str, float]:
    names: dict[str, float] = {}
    if current is not None:
        for k, amps in enumerate(current):
            names[f"{prefix}.current_l{k + 1}"] = amps * 1000.0
        names[f"{prefix}.current"] = max(current) * 1000.0
    if power is not None:
        names[f"{prefix}.power_w"] = power
    if import_wh is not None:
        names[f"{prefix}.import_wh"] = import_wh
    return names


def facts_to_names(facts: LiveFacts) -> dict[str, float]:
    """Every name a formula can read, with cFos units (mA, W, Wh)."""
    names = _meter("M1", facts.meter_current_a, facts.meter_power_w, facts.meter_import_wh)
    if facts.meter_power_w is not None:
        names["GM.grid_demand.power_w"] = facts.meter_power_w
        names["CM._surplus"] = max(0.0, -facts.meter_power_w)
    for i, evse in enumerate(facts.evses, start=1):
        prefix = f"E{i}"
        names.update(_meter(prefix, evse.current_a, evse.power_w, evse.import_wh))
        names[f"{prefix}.offered"] = evse.offered_a * 1000.0
        names[f"{prefix}.min_current"] = evse.min_current_a * 1000.0
        names[f"{prefix}.max_current"] = evse.max_current_a * 1000.0
        names[f"{prefix}.state"] = float(CFOS_STATE.get(evse.state or "", 2))
        if evse.soc is not None:
            names[f"{prefix}.soc"] = evse.soc
    charging = sum(1 for e in facts.evses if e.state == "Charging")
    names["CM._num_charging"] = float(charging)
    names["CM._num_charging1"] = float(max(charging, 1))
    names["GM.consumed_evse.power_w"] = sum(e.power_w for e in facts.evses)
    for k, value in enumerate(facts.inputs, start=1):
        if value is not None:
            names[f"PB.input{k}"] = value
    if facts.price is not None:
        names["CM._price"] = facts.price
    if facts.max_total_current_a is not None:
        names["CM._max_total_current"] = facts.max_total_current_a * 1000.0
    return names


@dataclass
class SiteEnvironment:
    """A ``FormulaEnvironment`` over live facts; the variable store layers ``CM.*`` on top."""

    facts: Callable[[], Mapping[str, float]]
    clock_now: Callable[[], datetime]
    zone: tzinfo
    prices: Callable[[], Sequence[tuple[datetime, float]]]
    _names: Mapping[str, float] | None = field(default=None, init=False, repr=False)

    @property
    def now(self) -> datetime:
        return self.clock_now()

    @property
    def timezone(self) -> tzinfo:
        return self.zone

    def price_schedule(self) -> Sequence[tuple[datetime, float]]:
        return self.prices()

    def lookup(self, name: str) -> float | None:
        if self._names is None:  # one snapshot per environment, however many names a formula reads
            self._names = self.facts()
        return self._names.get(name)
