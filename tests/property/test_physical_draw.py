"""What each EVSE may physically draw under the live tick never exceeds any node's limit.

Random trees (a root and up to three fuses), EVSEs wired for one or three phases with any
rotation, switchable or not, cars on one or three phases, per-phase and watt limits, limits
that allow one phase only (an OCPP profile with numberPhases 1), and an operator's watt limit
on the root. A charger that cannot switch draws on every phase it is wired for (and its car
takes) whatever phase count it is sent; one that can switch draws on at most the phase count
sent. The check is independent of the manager: it adds up those draws per grid phase on every
node and compares them with the limits the test itself put there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energytree.clock import ManualClock
from energytree.manager import EnergyManager, ManagerOptions
from energytree.plan import instant_plan
from energytree.types import EnergyFlowRequest, ExternalLimits, PhaseValues, Powermeter
from tests.builders import NOW, entry, evse, node

VOLT = 230.0
ROTATIONS = ["L1L2L3", "L2L3L1", "L3L1L2", "L1L3L2", "L3L2L1", "L2L1L3"]


@dataclass(frozen=True)
class Evse:
    uuid: str
    max_a: float
    wired: int
    rotation: str
    switchable: bool
    car_phases: int

    def grid_phases(self, count: int) -> list[int]:
        return [int(self.rotation[2 * k + 1]) - 1 for k in range(count)]


@dataclass(frozen=True)
class Limit:
    """A node's own limits: per phase [A], total [W], and whether it allows one phase only."""

    max_a: float
    power_w: float | None
    one_phase: bool

    def entry(self):
        return entry(NOW, self.max_a, self.power_w,
                     **({"ac_max_phase_count": 1} if self.one_phase else {}))


LIMITS = st.builds(Limit, st.sampled_from([6.0, 10.0, 16.0, 25.0, 32.0, 63.0]),
                   st.none() | st.sampled_from([1_500.0, 4_000.0, 6_000.0, 11_000.0, 30_000.0]),
                   st.booleans())


@st.composite
def evses(draw: st.DrawFn, prefix: str) -> list[Evse]:
    count = draw(st.integers(1, 3))
    return [Evse(f"{prefix}{i}", draw(st.sampled_from([10.0, 16.0, 32.0])),
                 draw(st.sampled_from([1, 3])), draw(st.sampled_from(ROTATIONS)),
                 draw(st.booleans()), draw(st.sampled_from([1, 3])))
            for i in range(count)]


@st.composite
def sites(draw: st.DrawFn) -> tuple[Limit, list[tuple[Limit, list[Evse]]]]:
    root = draw(LIMITS)
    fuses = [(draw(LIMITS), draw(evses(f"f{k}e"))) for k in range(draw(st.integers(1, 3)))]
    return root, fuses


def request(root: Limit, fuses: list[tuple[Limit, list[Evse]]]) -> EnergyFlowRequest:
    children = [
        node(f"fuse{k}", *[evse(e.uuid, e.max_a, phases=e.wired, rotation=e.rotation,
                                switchable=e.switchable) for e in members],
             schedule=[limit.entry()])
        for k, (limit, members) in enumerate(fuses)
    ]
    return node("grid", *children, schedule=[root.entry()])


def drawn(e: Evse, amps: float, phases: int) -> tuple[list[int], float]:
    """The grid phases an EVSE physically draws on, and its current there [A]."""
    if amps <= 0:
        return [], 0.0
    count = min(e.wired, e.car_phases)
    if e.switchable:
        count = min(count, phases)
    return e.grid_phases(count), amps


def check(manager: EnergyManager, root: Limit, operator_w: float | None,
          fuses: list[tuple[Limit, list[Evse]]]) -> None:
    sent = {x.uuid: x.limits_root_side for x in manager.enforced_limits}
    site_a, site_w = np.zeros(3), 0.0
    for limit, members in fuses:
        fuse_a, fuse_w = np.zeros(3), 0.0
        for e in members:
            res = sent[e.uuid]
            assert res is not None
            phases, amps = drawn(e, res.ac_max_current_A or 0.0, res.ac_max_phase_count or 3)
            assert amps <= e.max_a + 1e-6
            fuse_a[phases] += amps
            fuse_w += amps * len(phases) * VOLT
        for cap, a, w in ((limit, fuse_a, fuse_w),):
            assert np.all(a <= cap.max_a + 1e-6), f"fuse per phase {a} > {cap.max_a} A"
            assert cap.power_w is None or w <= cap.power_w + 1e-3, f"fuse {w} W > {cap}"
        site_a += fuse_a
        site_w += fuse_w
    assert np.all(site_a <= root.max_a + 1e-6), f"root per phase {site_a} > {root.max_a} A"
    for cap_w in (root.power_w, operator_w):
        assert cap_w is None or site_w <= cap_w + 1e-3, f"root {site_w} W > {cap_w} W"


def car_meter(e: Evse, amps: float) -> Powermeter:
    """The EVSE's meter with the car drawing ``amps`` on the car's phases."""
    per_phase = [amps if k < min(e.wired, e.car_phases) else 0.0 for k in range(3)]
    return Powermeter(current_A=PhaseValues(L1=per_phase[0], L2=per_phase[1], L3=per_phase[2]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(site=sites(), operator_w=st.none() | st.sampled_from([2_000.0, 6_000.0, 20_000.0]),
       rotation=st.integers(0, 5))
def test_no_evse_may_draw_more_than_any_node_allows(site, operator_w, rotation) -> None:
    root, fuses = site
    clock = ManualClock(NOW)
    options = ManagerOptions(rotation_period_s=1.0)
    manager = EnergyManager(request(root, fuses), planner=instant_plan, clock=clock,
                            options=options)
    if operator_w is not None:  # e.g. an OCPP profile with numberPhases 1 on the root
        manager.set_external_limits("operator", "grid", ExternalLimits(schedule_import=[
            entry(NOW, None, operator_w, ac_max_phase_count=1)]))
    clock.advance(rotation)
    manager.tick()
    check(manager, root, operator_w, fuses)
    # the cars' meters report what they draw; 1-phase cars are learned and budgeted so
    clock.advance(10)
    manager.tick()
    sent = {x.uuid: x.limits_root_side for x in manager.enforced_limits}
    for _, members in fuses:
        for e in members:
            res = sent[e.uuid]
            manager.report_measurement(e.uuid, car_meter(e, res.ac_max_current_A or 0.0))
    manager.tick()
    check(manager, root, operator_w, fuses)
