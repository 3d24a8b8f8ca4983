"""Closed-loop benchmark: ``python -m bench.closedloop``.

Runs the real manager against simulated cars (``energytree.app.closedloop``) and prints:

1. **Stranded capacity.** An office site of 8 EVSEs (3-phase, 32 A) on 3 × 63 A, dimmed by the
   operator to 60 % of 43 kW; three 1-phase cars on 3-phase EVSEs (rotations spread), two cars
   tapering near full and three ordinary 3-phase cars, each following its limit 1–3 s late:
   demand far above the cap. Figures: seconds until the EVSEs' measured power first reaches
   90 % of the cap, and the share of the cap used over the last five minutes — with and
   without the EVSEs' own meters. Then the operator lifts the cap from 40 % to 60 %: seconds
   until 90 % of the new cap is drawn.
2. **Targets.** A working day on the same site (1 s physics, 30 s ticks, the optimiser):
   cars arrive 07:00–09:30 with and without targets and leave 15:00–18:00, with a household.
   Figures: targets judged (a plan at least 15 min before the leave time), those the plan
   called reachable, those met, energy short of what was needed, overloads and oscillations
   found by the closed-loop checks.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta

import numpy as np

from energytree.app.closedloop import (
    START,
    ClosedLoop,
    Dimming,
    Record,
    Scenario,
    Session,
)
from energytree.app.loopchecks import oscillations, overloads, target_outcomes
from energytree.app.simulation import ApplianceStep, Household, SimulatedCar
from energytree.site import SiteConfig
from optimizer import optimise

CONNECTION_A = 63
EVSES = 8
FULL_W = 43_000.0  # what the operator's percentages refer to
ROTATIONS = ["L1L2L3", "L2L3L1", "L3L1L2"]


def office() -> SiteConfig:
    evses = [{"evse": f"ev{i}", "max_current_A": 32, "phase_rotation": ROTATIONS[i % 3]}
             for i in range(EVSES)]
    return SiteConfig.model_validate({
        "grid": {"uuid": "office", "max_current_A": CONNECTION_A, "children": evses},
        "slot_minutes": 15, "horizon_hours": 24})


def mixed_cars() -> list[SimulatedCar]:
    """Three 1-phase cars, two tapering near full, three ordinary ones; lags of 1–3 s."""
    return [
        *(SimulatedCar(phases=1, max_current_a=16.0, soc_percent=40.0, lag_s=1.0 + i)
          for i in range(3)),
        *(SimulatedCar(phases=3, max_current_a=32.0, soc_percent=93.0, battery_kwh=40.0,
                       lag_s=2.0) for _ in range(2)),
        *(SimulatedCar(phases=3, max_current_a=32.0, soc_percent=30.0, lag_s=3.0)
          for _ in range(3)),
    ]


def seconds_to_share(record: Record, cap_w: float, since_s: float, share: float = 0.9
                     ) -> float:
    """Seconds from ``since_s`` until the measured EVSE power first reaches share × cap."""
    t, power = np.array(record.t_s), record.site_power_w()
    reached = np.nonzero((t >= since_s) & (power >= share * cap_w))[0]
    return float(t[reached[0]] - since_s) if len(reached) else float("inf")


def stranded(evse_meters: bool) -> dict[str, float]:
    site = office()
    uuids = [f"ev{i}" for i in range(EVSES)]
    cap_w, lower_w = 0.6 * FULL_W, 0.4 * FULL_W
    scenario = Scenario(
        site, hours=0.5,
        sessions=[Session(u, 0, 7200, car) for u, car in zip(uuids, mixed_cars(), strict=True)],
        household=Household(0.5),
        dimmings=[Dimming(0, cap_w), Dimming(900, lower_w), Dimming(1200, cap_w)],
        evse_meters=frozenset(uuids if evse_meters else ()))
    record = asyncio.run(ClosedLoop(scenario).run())
    t, power = np.array(record.t_s), record.site_power_w()
    last = (t > 600) & (t <= 900)
    return {
        "t90_start_s": seconds_to_share(record, cap_w, 0.0),
        "used_share": float(power[last].mean() / cap_w),
        "t90_after_raise_s": seconds_to_share(record, cap_w, 1200.0),
        "overloads": len(overloads(record)),
        "oscillations": len(oscillations(record)),
    }


def working_day() -> dict[str, float]:
    site = office()
    rng = np.random.default_rng(7)
    sessions = []
    for i in range(EVSES):
        car = mixed_cars()[i]
        car.soc_percent = float(rng.uniform(15, 50))
        arrive = int(rng.uniform(7, 9.5) * 3600)
        leave = int(rng.uniform(15, 18) * 3600)
        goal = min(80.0, car.soc_percent + float(rng.uniform(20, 45))) if i % 2 == 0 else None
        sessions.append(Session(f"ev{i}", arrive, leave, car, goal))
    kettle = [ApplianceStep(START + timedelta(hours=h), 900, k % 3, 12.0)
              for k, h in enumerate((8, 12, 16))]
    scenario = Scenario(site, hours=24.0, sessions=sessions, household=Household(1.0, kettle),
                        dimmings=[Dimming(13 * 3600, 0.5 * FULL_W), Dimming(15 * 3600, None)],
                        tick_s=30, step_s=5, evse_meters=frozenset(s.evse for s in sessions))
    loop = ClosedLoop(scenario, planner=lambda problem, rotation=0: optimise(
        problem, time_budget_s=5.0, rotation=rotation))
    record = asyncio.run(loop.run())
    outcomes = target_outcomes(record)
    promised = [o for o in outcomes if o.promised]
    return {"targets": len(outcomes), "called_reachable": len(promised),
            "met": sum(o.met for o in promised),
            "short_kwh": sum(max(0.0, o.needed_kwh - o.got_kwh) for o in outcomes),
            "overloads": len(overloads(record)), "oscillations": len(oscillations(record)),
            "replans": loop.replans}


def main() -> int:
    print("stranded capacity: 8 EVSEs, cap 60 % of 43 kW (25.8 kW), 1-phase and tapering cars")
    print(f"{'EVSE meters':<12} {'t90 from start (s)':>19} {'cap used, min 10–15':>20} "
          f"{'t90 after 40→60 % (s)':>22} {'overloads':>9} {'oscillations':>12}")
    for meters in (True, False):
        started = time.perf_counter()
        row = stranded(meters)
        print(f"{'yes' if meters else 'no':<12} {row['t90_start_s']:>19.0f} "
              f"{100 * row['used_share']:>19.1f}% {row['t90_after_raise_s']:>22.0f} "
              f"{row['overloads']:>9} {row['oscillations']:>12}"
              f"   ({time.perf_counter() - started:.1f} s to simulate 30 min)")
    started = time.perf_counter()
    day = working_day()
    print(f"\ntargets over a working day (24 h simulated in {time.perf_counter() - started:.1f} s,"
          f" {day['replans']} plans):")
    print(f"targets {day['targets']}, called reachable {day['called_reachable']}, "
          f"met {day['met']}, energy short of all goals {day['short_kwh']:.2f} kWh, "
          f"overloads {day['overloads']}, oscillations {day['oscillations']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
