"""Simulated cars, EVSEs and a household, for ``serve --simulate``, the closed loop and benches.

A car has a battery (kWh, SoC), its own phase count (a 1-phase car on a 3-phase EVSE draws on
one phase), a minimum and a maximum current, tapers linearly from ``taper_soc`` to its minimum
near full, and follows its limit ``lag_s`` late (IEC 61851-1 gives a car up to 5 s). Its EVSE
obeys a ``LimitReceiver`` and puts the draw on the grid phases its ``phase_rotation`` names; an
EVSE that cannot switch phases ignores a 1-phase instruction, as real chargers do.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from energytree.leaf import LimitReceiver
from energytree.types import EvseState, PhaseValues, Powermeter

__all__ = [
    "ApplianceStep",
    "Household",
    "SimulatedCar",
    "SimulatedEvse",
    "grid_phases",
    "household_load_profile",
]

Currents = tuple[float, float, float]
IEC_MIN_A = 6.0  # IEC 61851: a lower limit is a pause by the EVSE, not an offer


def grid_phases(rotation: str) -> tuple[int, int, int]:
    """Grid phase index (0 = L1) of each EVSE phase, from a rotation such as ``"L2L3L1"``."""
    return tuple(int(rotation[i + 1]) - 1 for i in range(0, 6, 2))  # type: ignore[return-value]


@dataclass
class SimulatedCar:
    battery_kwh: float = 60.0
    soc_percent: float = 30.0
    max_current_a: float = 16.0
    phases: int = 3
    taper_soc: float = 80.0
    min_current_a: float = 6.0
    lag_s: float = 0.0  # how late the car follows a new limit [s]

    def accepts_a(self) -> float:
        """Current the battery accepts now [A per phase]."""
        if self.soc_percent >= 100.0:
            return 0.0
        if self.soc_percent <= self.taper_soc:
            return self.max_current_a
        share = (100.0 - self.soc_percent) / (100.0 - self.taper_soc)
        return max(self.min_current_a, self.max_current_a * share)

    def draw(self, allowed_a: float) -> float:
        """What the car draws under a limit [A]: nothing below its minimum (IEC 61851 pause)."""
        if allowed_a < self.min_current_a:
            return 0.0
        return min(allowed_a, self.accepts_a())


@dataclass(frozen=True)
class _Command:
    at_s: float  # when the EVSE received it, on its own time axis
    amps: float
    phases: int


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
    evse_phases: int = 3
    phase_rotation: str = "L1L2L3"
    can_switch_phases: bool = True
    elapsed_s: float = 0.0
    car_refuses: bool = False  # the car takes nothing of a limit it follows (below its minimum)
    _commands: deque[_Command] = field(default_factory=deque, repr=False)

    @property
    def state(self) -> EvseState:
        if self.car is None:
            return EvseState.Unplugged
        if self.car.soc_percent >= 100.0:
            return EvseState.Finished
        if self.current_a > 0:
            return EvseState.Charging
        return EvseState.PausedEV if self.car_refuses else EvseState.PausedEVSE

    def plug(self, car: SimulatedCar | None) -> None:
        """A car arrives (or, with None, leaves); a new car follows limits from now on, late by
        its lag, and draws nothing until then."""
        self.car = car
        self.car_refuses = False
        self._commands.clear()
        self.current_a, self.phases_used = 0.0, 0

    def step(self, dt_s: float) -> None:
        """Read the limit now and draw for the next ``dt_s`` seconds, ``lag_s`` behind it."""
        limits = self.receiver.limits()
        asked = limits.ac_max_phase_count or self.evse_phases
        phases = min(asked, self.evse_phases) if self.can_switch_phases else self.evse_phases
        self._commands.append(_Command(self.elapsed_s, max(0.0, limits.ac_max_current_A or 0.0),
                                       phases))
        start, end = self.elapsed_s, self.elapsed_s + dt_s
        self.elapsed_s = end
        lag = self.car.lag_s if self.car else 0.0
        while len(self._commands) > 1 and self._commands[1].at_s + lag <= start:
            self._commands.popleft()  # superseded before this step began
        if self.car is None:
            self.current_a, self.phases_used = 0.0, 0
            return
        energy_wh = 0.0
        for seg_start, seg_end, command in self._segments(start, end):
            amps, used = self._draw(command)
            self.car_refuses = command is not None and command.amps >= IEC_MIN_A and amps == 0
            energy_wh += amps * used * self.voltage_v * (seg_end - seg_start) / 3600.0
            self.current_a, self.phases_used = amps, used
        self.import_wh += energy_wh
        car = self.car
        car.soc_percent = min(100.0, car.soc_percent + 100.0 * energy_wh / 1000.0 / car.battery_kwh)

    def _draw(self, command: _Command | None) -> tuple[float, int]:
        """(current per phase [A], phases) the car draws under one command."""
        assert self.car is not None
        if command is None:
            return 0.0, 0
        amps = self.car.draw(command.amps)
        return (amps, min(self.car.phases, command.phases)) if amps > 0 else (0.0, 0)

    def _segments(self, start: float, end: float
                  ) -> Iterable[tuple[float, float, _Command | None]]:
        """Pieces of [start, end] with the command the car follows in each (lag applied)."""
        assert self.car is not None
        lag = self.car.lag_s
        edges = [start]
        followed: list[_Command | None] = []
        for command in self._commands:
            effective = command.at_s + lag
            if effective <= start:
                followed[:] = [command]
            elif effective < end:
                edges.append(effective)
                followed.append(command)
        if len(followed) < len(edges):
            followed.insert(0, None)  # nothing in force yet (a car just plugged in)
        edges.append(end)
        return [(edges[i], edges[i + 1], followed[i]) for i in range(len(followed))
                if edges[i + 1] > edges[i] or i == len(followed) - 1]

    def measurement(self) -> Powermeter:
        """What the EVSE's meter reports (currents per EVSE phase, before the rotation)."""
        per_phase = [self.current_a if k < self.phases_used else 0.0 for k in range(3)]
        return Powermeter(
            energy_Wh_import=PhaseValues(total=self.import_wh),
            power_W=PhaseValues(total=self.current_a * self.phases_used * self.voltage_v),
            current_A=PhaseValues(L1=per_phase[0], L2=per_phase[1], L3=per_phase[2]),
        )

    def grid_currents_a(self) -> Currents:
        """The draw on the grid's L1, L2, L3 [A]: EVSE phase k lands on its rotation's k-th."""
        grid = [0.0, 0.0, 0.0]
        for k in grid_phases(self.phase_rotation)[: self.phases_used]:
            grid[k] += self.current_a
        return grid[0], grid[1], grid[2]


def household_load_profile(t: datetime) -> Currents:
    """Per-phase currents [A] of a household at local time t: base load, morning, cooking at 18:00.

    Phases are uneven on purpose (most single-phase appliances sit on L1), as in real houses.
    """
    hour = t.hour + t.minute / 60 + t.second / 3600

    def bump(centre_h: float, width_h: float) -> float:
        distance = min(abs(hour - centre_h), 24 - abs(hour - centre_h))  # wraps at midnight
        return math.exp(-0.5 * (distance / width_h) ** 2)

    base_w = 350.0
    spread_w = 1500 * bump(7.25, 0.6) + 800 * bump(12.5, 1.0) + 900 * bump(20.5, 1.5)
    cooking_w = 4500 * bump(18.0, 0.7)  # a stove on L1 + L2
    shares = (0.45, 0.33, 0.22)
    return (
        (shares[0] * (base_w + spread_w) + 0.5 * cooking_w) / 230.0,
        (shares[1] * (base_w + spread_w) + 0.5 * cooking_w) / 230.0,
        (shares[2] * (base_w + spread_w)) / 230.0,
    )


@dataclass(frozen=True)
class ApplianceStep:
    """An appliance that switches on at ``start`` for ``duration_s`` on one grid phase."""

    start: datetime
    duration_s: float
    phase: int  # 0 = L1
    amps: float

    def on(self, t: datetime) -> bool:
        return 0.0 <= (t - self.start).total_seconds() < self.duration_s


@dataclass
class Household:
    """The site's own load: a smooth daily profile (scaled) plus appliances that step."""

    scale: float = 1.0
    steps: list[ApplianceStep] = field(default_factory=list)

    def current_a(self, local: datetime) -> Currents:
        """Per-phase current [A] at a local time (the profile follows the clock on the wall)."""
        base = household_load_profile(local)
        amps = [self.scale * x for x in base]
        for step in self.steps:
            if step.on(local):
                amps[step.phase] += step.amps
        return amps[0], amps[1], amps[2]

    def steps_between(self, start: datetime, end: datetime) -> bool:
        """Whether an appliance switches on or off in (start, end]."""
        for step in self.steps:
            for edge in (step.start, step.start + timedelta(seconds=step.duration_s)):
                if start < edge <= end:
                    return True
        return False
