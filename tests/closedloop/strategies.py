"""Hypothesis strategies for closed-loop scenarios: sites, cars, households, operators, meters.

Every site is safe to run by construction: the household at its peak, plus the safe current the
EVSEs share while the meter is silent, fits the grid connection with the manager's margin.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import strategies as st

from energytree.app.closedloop import START, Dimming, Dropout, Scenario, Session
from energytree.app.simulation import ApplianceStep, Household, SimulatedCar
from energytree.site import SiteConfig, evse_configs

ROTATIONS = ["L1L2L3", "L2L3L1", "L3L1L2", "L1L3L2", "L3L2L1", "L2L1L3"]
PROFILE_PEAK_A = 11.0  # the household profile's highest phase current at scale 1
MARGIN_A = 1.0


@st.composite
def evse_specs(draw: st.DrawFn, index: int) -> dict[str, Any]:
    phases = draw(st.sampled_from([1, 3]))
    return {"evse": f"e{index}", "max_current_A": draw(st.sampled_from([16, 32])),
            "phases": phases, "phase_rotation": draw(st.sampled_from(ROTATIONS)),
            "phase_switching": phases == 3 and draw(st.booleans())}


@st.composite
def sites(draw: st.DrawFn, connection_a: int, slot_minutes: int) -> SiteConfig:
    """A connection with EVSEs on it, in a fuse, and in a fuse inside that fuse."""
    evses = [draw(evse_specs(i)) for i in range(draw(st.integers(2, 5)))]
    depth = [draw(st.integers(0, 2)) for _ in evses]
    outer_a = draw(st.integers(10, connection_a))
    inner_a = draw(st.integers(8, outer_a))
    inner = {"fuse": "inner", "max_current_A": inner_a,
             "children": [e for e, d in zip(evses, depth, strict=True) if d == 2]}
    outer = {"fuse": "outer", "max_current_A": outer_a,
             "max_power_W": draw(st.sampled_from([None, 7000, 11000])),
             "children": [e for e, d in zip(evses, depth, strict=True) if d == 1] + [inner]}
    root = [e for e, d in zip(evses, depth, strict=True) if d == 0] + [outer]
    return SiteConfig.model_validate({
        "grid": {"uuid": "grid", "max_current_A": connection_a, "children": root},
        "slot_minutes": slot_minutes, "horizon_hours": 12})


@st.composite
def cars(draw: st.DrawFn) -> SimulatedCar:
    return SimulatedCar(
        battery_kwh=draw(st.sampled_from([20.0, 40.0, 64.0, 80.0])),
        soc_percent=draw(st.floats(5.0, 90.0)),
        max_current_a=draw(st.sampled_from([10.0, 16.0, 32.0])),
        phases=draw(st.sampled_from([1, 3])),
        taper_soc=draw(st.floats(70.0, 95.0)),
        min_current_a=draw(st.sampled_from([6.0, 8.0])),
        lag_s=draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5, 5.0])),
    )


@st.composite
def sessions(draw: st.DrawFn, evse: str, horizon_s: int) -> list[Session]:
    """One to three cars, one after the other; some with a target of reaching a SoC."""
    found, t = [], draw(st.integers(0, horizon_s // 4))
    for _ in range(draw(st.integers(1, 3))):
        stay = draw(st.integers(horizon_s // 10, horizon_s // 2))
        if t + stay > horizon_s:
            break
        car = draw(cars())
        goal = None
        if draw(st.booleans()) and car.soc_percent < min(car.taper_soc, 80.0) - 5.0:
            goal = draw(st.floats(car.soc_percent + 5.0, min(car.taper_soc, 80.0)))
        found.append(Session(evse, t, t + stay, car, goal))
        t += stay + draw(st.integers(1, horizon_s // 6))
    return found


@st.composite
def households(draw: st.DrawFn, budget_a: float, horizon_s: int) -> Household:
    """A scaled daily profile plus appliances, each in its own stretch of time."""
    scale = draw(st.floats(0.0, min(1.0, budget_a / 2 / PROFILE_PEAK_A)))
    bins = draw(st.integers(0, 6))
    steps = []
    for k in range(bins):
        width = horizon_s // max(bins, 1)
        start = k * width + draw(st.integers(0, width // 2))
        steps.append(ApplianceStep(
            START + timedelta(seconds=start), draw(st.integers(30, max(31, width // 2))),
            draw(st.integers(0, 2)), draw(st.floats(2.0, budget_a / 2))))
    return Household(scale, steps)


@st.composite
def scenarios(draw: st.DrawFn, hours: float, tick_s: int, step_s: int = 1,
              slot_minutes: int = 15) -> Scenario:
    horizon_s = int(hours * 3600)
    connection_a = draw(st.sampled_from([25, 32, 40, 63]))
    site = draw(sites(connection_a, slot_minutes))
    safe_a = draw(st.sampled_from([0.0, 6.0, 10.0]))
    budget_a = connection_a - MARGIN_A - safe_a - 1.0
    uuids = [e.evse for e in evse_configs(site)]
    dimmings = [Dimming(draw(st.integers(0, horizon_s)),
                        draw(st.one_of(st.none(), st.floats(4200.0, 3 * 230.0 * connection_a))),
                        draw(st.sampled_from([None, None, 1])))  # an OCPP 1-phase profile
                for _ in range(draw(st.integers(0, 3)))]
    dropouts = [Dropout(draw(st.integers(60, horizon_s)), draw(st.integers(5, 300)))
                for _ in range(draw(st.integers(0, 2)))]
    return Scenario(
        site, hours,
        sessions=[s for uuid in uuids for s in draw(sessions(uuid, horizon_s))],
        household=draw(households(budget_a, horizon_s)),
        dimmings=dimmings, dropouts=dropouts, tick_s=tick_s, step_s=step_s,
        meter_period_s=draw(st.integers(1, 3)),
        evse_meters=frozenset(draw(st.sets(st.sampled_from(uuids)))),
        safe_current_a=safe_a, margin_a=MARGIN_A)

