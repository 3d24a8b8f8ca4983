"""What each EVSE draws: its measured current per phase, and the phases its car uses.

A measurement gives the current on each of the EVSE's own phases (its L1, L2, L3, which its
``phase_rotation`` maps to grid phases). A phase carries the car when it draws at least
``ACTIVE_MIN_A`` and a quarter of the busiest phase. When the EVSE offered more phases than the
car takes, the car's phases are learned for the session: from then on the EVSE is budgeted and
planned as a load on those phases only. A car seen on a phase outside what was learned is
budgeted from configuration again at once (never fewer phases than it draws on).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from energytree.types import Powermeter

__all__ = ["ACTIVE_MIN_A", "Drawn", "PhaseLearner", "active_phases", "drawn_from"]

ACTIVE_MIN_A = 1.0  # [A] below this a phase carries no car (meter noise, the EVSE's own use)
LEARN_MIN_A = 2.0  # [A] only a car that really draws tells how many phases it uses
ACTIVE_SHARE = 0.25


@dataclass(frozen=True)
class Drawn:
    """One EVSE's measurement as the manager uses it.

    ``current_a`` is per EVSE phase [A] (None when the meter gave no currents), ``power_w`` [W]
    and ``energy_wh`` [Wh] may be None, ``at_s`` is when it arrived (monotonic clock) [s].
    """

    current_a: tuple[float, float, float] | None
    power_w: float | None
    energy_wh: float | None
    at_s: float

    def total_power_w(self, voltage_v: float) -> float | None:
        """The power it draws [W]: as measured, else its currents times the voltage."""
        if self.power_w is not None:
            return abs(self.power_w)
        if self.current_a is not None:
            return sum(self.current_a) * voltage_v
        return None


def drawn_from(meter: Powermeter, at_s: float) -> Drawn:
    """Read the fields the manager uses from an EVerest ``Powermeter``."""
    amps = meter.current_A
    current = None
    if amps is not None and any(x is not None for x in (amps.L1, amps.L2, amps.L3)):
        current = (abs(amps.L1 or 0.0), abs(amps.L2 or 0.0), abs(amps.L3 or 0.0))
    power = meter.power_W.total if meter.power_W is not None else None
    energy = meter.energy_Wh_import.total if meter.energy_Wh_import is not None else None
    return Drawn(current, power, energy, at_s)


def active_phases(current_a: tuple[float, float, float]) -> tuple[int, ...]:
    """The EVSE phases (0, 1, 2) that carry the car's current."""
    floor = max(ACTIVE_MIN_A, ACTIVE_SHARE * max(current_a))
    return tuple(k for k, value in enumerate(current_a) if value >= floor)


@dataclass
class PhaseLearner:
    """The phases each session's car was seen drawing on (EVSE phase indices), by EVSE uuid."""

    car_phases: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def observe(self, uuid: str, current_a: tuple[float, float, float],
                offered_phases: int) -> bool:
        """Learn from one measurement taken while ``offered_phases`` were offered; True if
        what is known about the car changed."""
        if max(current_a) < LEARN_MIN_A:
            return False
        seen = active_phases(current_a)
        known = self.car_phases.get(uuid)
        if len(seen) < offered_phases:
            learned: tuple[int, ...] | None = seen
        elif known is not None and not set(seen) <= set(known):
            learned = None  # more (or other) phases than learned: back to configuration
        else:
            learned = known
        if learned == known:
            return False
        if learned is None:
            del self.car_phases[uuid]
        else:
            self.car_phases[uuid] = learned
        return True

    def forget(self, uuid: str) -> bool:
        """A session ended: the next car starts from configuration again."""
        return self.car_phases.pop(uuid, None) is not None

    def by_index(self, uuids: Mapping[str, int]) -> dict[int, tuple[int, ...]]:
        """The learned phases keyed by EVSE position, for the EVSEs in ``uuids``."""
        return {uuids[u]: p for u, p in self.car_phases.items() if u in uuids}
