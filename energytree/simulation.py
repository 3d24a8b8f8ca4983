"""Simulated EVSEs with simulated cars, for ``serve --simulate``, demos and tests.

A car has a battery (kWh, SoC), a maximum charging current, one or three phases, and tapers
linearly from ``taper_soc`` to a trickle at 100 %. Its EVSE obeys a ``LimitReceiver``: the car
draws the smaller of what the limit allows and what the battery accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from energytree.leaf import LimitReceiver
from energytree.types import EvseState, PhaseValues, Powermeter

__all__ = ["SimulatedCar", "SimulatedEvse"]

MIN_CURRENT_A = 6.0


@dataclass
class SimulatedCar:
    battery_kwh: float = 60.0
    soc_percent: float = 30.0
    max_current_a: float = 16.0
    phases: int = 3
    taper_soc: float = 80.0

    def accepts_a(self) -> float:
        """Current the battery accepts now [A per phase]."""
        if self.soc_percent >= 100.0:
            return 0.0
        if self.soc_percent <= self.taper_soc:
            return self.max_current_a
        share = (100.0 - self.soc_percent) / (100.0 - self.taper_soc)
        return max(MIN_CURRENT_A, self.max_current_a * share)


@dataclass
class SimulatedEvse:
    """One EVSE, optionally with a car plugged in; ``step`` advances it by ``dt_s``."""

    uuid: str
    receiver: LimitReceiver
    voltage_v: float = 230.0
    car: SimulatedCar | None = None
    current_a: float = 0.0
    phases_used: int = 0
    import_wh: float = 0.0
    history: list[float] = field(default_factory=list)

    @property
    def state(self) -> EvseState:
        if self.car is None:
            return EvseState.Unplugged
        if self.car.soc_percent >= 100.0:
            return EvseState.Finished
        return EvseState.Charging if self.current_a > 0 else EvseState.PausedEVSE

    def step(self, dt_s: float) -> None:
        """Draw what the limit and the car allow for ``dt_s`` seconds."""
        limits = self.receiver.limits()
        allowed = max(0.0, limits.ac_max_current_A or 0.0)
        if self.car is None or allowed < MIN_CURRENT_A:
            self.current_a, self.phases_used = 0.0, 0
            return
        phases = min(self.car.phases, limits.ac_max_phase_count or 3)
        self.current_a = min(allowed, self.car.accepts_a())
        self.phases_used = phases
        energy_wh = self.current_a * phases * self.voltage_v * dt_s / 3600.0
        self.import_wh += energy_wh
        self.car.soc_percent = min(100.0, self.car.soc_percent
                                   + 100.0 * energy_wh / 1000.0 / self.car.battery_kwh)

    def measurement(self) -> Powermeter:
        """What the EVSE's meter reports (currents per EVSE phase)."""
        per_phase = [self.current_a if k < self.phases_used else 0.0 for k in range(3)]
        return Powermeter(
            energy_Wh_import=PhaseValues(total=self.import_wh),
            power_W=PhaseValues(total=self.current_a * self.phases_used * self.voltage_v),
            current_A=PhaseValues(L1=per_phase[0], L2=per_phase[1], L3=per_phase[2]),
        )
