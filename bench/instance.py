"""A synthetic charging day for benchmarks: N EVSEs under a three-level tree.

Grid connection → feeders (100 EVSEs each) → sub-distributions (10 EVSEs each) → EVSEs of
3 × 16 A. 60 % workplace cars (arrive ~08:00 ± 1 h, stay 9 ± 1.5 h), 40 % evening cars
(arrive ~18:00 ± 1.5 h, leave by midnight), 5–40 kWh each. Time-of-use prices (night 0.18,
morning 0.30, midday solar dip 0.15, day 0.25, evening peak 0.40, late 0.22 EUR/kWh ± 0.02).
The site may draw 25 % of all EVSEs' power, and the grid operator cuts it to 40 % from
17:00 to 19:00. An EVSE's own import schedule is 0 A before its car arrives.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from energytree.types import (
    EnergyFlowRequest,
    EvseState,
    LimitsReq,
    NodeType,
    OptimizerTarget,
    PricePerKwh,
    ScheduleReqEntry,
)

__all__ = ["DAY_START", "make_request"]

DAY_START = datetime(2026, 11, 23, tzinfo=UTC)
SLOT = timedelta(minutes=15)
VOLTS, PHASES, MAX_A, MIN_A = 230.0, 3, 16.0, 6.0


def _entry(at: datetime, root: LimitsReq, price: float | None = None) -> ScheduleReqEntry:
    return ScheduleReqEntry(
        timestamp=at,
        limits_to_root=root,
        limits_to_leaves=LimitsReq(),
        price_per_kwh=None if price is None else PricePerKwh(timestamp=at, value=price),
    )


def _prices(rng: np.random.Generator) -> np.ndarray:
    hours = np.arange(96) * 0.25
    price = np.select(
        [hours < 6, hours < 9, (hours >= 11) & (hours < 15), hours < 17, hours < 21],
        [0.18, 0.30, 0.15, 0.25, 0.40],
        default=0.22,
    )
    return np.round(price + rng.uniform(-0.02, 0.02, 96), 4)


def _evse(uuid: str, rng: np.random.Generator) -> EnergyFlowRequest:
    work = rng.random() < 0.6
    arrive_h = rng.normal(8, 1) if work else rng.normal(18, 1.5)
    stay_h = rng.normal(9, 1.5) if work else rng.normal(10, 2)
    arrive = int(np.clip(round(arrive_h * 4), 0, 88))
    leave = int(np.clip(arrive + round(stay_h * 4), arrive + 4, 96))
    energy = float(np.round(rng.uniform(5, 40), 2))
    open_limits = LimitsReq(ac_max_current_A=MAX_A, ac_min_current_A=MIN_A, ac_max_phase_count=3)
    schedule = [_entry(DAY_START, LimitsReq(ac_max_current_A=0.0, ac_max_phase_count=3))]
    schedule.append(_entry(DAY_START + arrive * SLOT, open_limits))
    if leave < 96:
        schedule.append(_entry(DAY_START + leave * SLOT, LimitsReq(ac_max_current_A=0.0)))
    return EnergyFlowRequest(
        uuid=uuid,
        node_type=NodeType.Evse,
        schedule_import=schedule,
        evse_state=EvseState.Charging,
        optimizer_target=OptimizerTarget(
            energy_amount_needed=energy, leave_time=DAY_START + leave * SLOT
        ),
    )


def make_request(n: int, seed: int = 0, with_targets: bool = True,
                 untargeted: float = 0.0) -> EnergyFlowRequest:
    """The benchmark day for ``n`` EVSEs (deterministic for a seed); ``untargeted`` is the
    share of EVSEs, spread evenly, whose cars come without a target (all with
    ``with_targets=False``): the planner shares what the others leave among them."""
    rng = np.random.default_rng(seed + n)
    evses = [_evse(f"evse-{i:04d}", rng) for i in range(n)]
    share = 0.0 if with_targets else 1.0
    share = max(share, untargeted)
    evses = [e.model_copy(update={"optimizer_target": None})
             if int((i + 1) * share) > int(i * share) else e for i, e in enumerate(evses)]
    per_evse_w = MAX_A * VOLTS * PHASES
    site_w = max(2 * per_evse_w, 0.25 * n * per_evse_w)
    site_a = site_w / (VOLTS * PHASES)
    subs = [
        EnergyFlowRequest(
            uuid=f"sub-{j:03d}",
            node_type=NodeType.Generic,
            children=evses[j * 10 : (j + 1) * 10],
            schedule_import=[_entry(DAY_START, LimitsReq(ac_max_current_A=100.0))],
        )
        for j in range((n + 9) // 10)
    ]
    feeders = [
        EnergyFlowRequest(
            uuid=f"feeder-{j:02d}",
            node_type=NodeType.Generic,
            children=subs[j * 10 : (j + 1) * 10],
            schedule_import=[_entry(DAY_START, LimitsReq(ac_max_current_A=max(site_a * 0.6, 40)))],
        )
        for j in range((len(subs) + 9) // 10)
    ]
    prices = _prices(rng)
    root_schedule = []
    for slot in range(96):
        cap = site_a * (0.4 if 68 <= slot < 76 else 1.0)
        root_schedule.append(
            _entry(DAY_START + slot * SLOT, LimitsReq(ac_max_current_A=float(round(cap, 3))),
                   float(prices[slot]))
        )
    return EnergyFlowRequest(
        uuid="grid",
        node_type=NodeType.Generic,
        children=feeders,
        schedule_import=root_schedule,
    )
