"""The live manager with a ManualClock: publishing, leases, re-plans, the grid meter, restarts.

Tests drive the manager either through its loops (``async with manager``) and wait a bounded
time for an observable result, or step it by hand with ``settled`` (re-plan, then tick).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energytree.clock import ManualClock
from energytree.errors import ConfigError, NotFoundError, RequestError
from energytree.gridops import power_limit
from energytree.leaf import LimitReceiver
from energytree.manager import EnergyManager, ManagerOptions, MeterFeed
from energytree.phases import SwitchingOptions
from energytree.plan import Plan, instant_plan
from energytree.problem import ExternalSource, Problem
from energytree.types import (
    EnergyFlowRequest,
    EnforcedLimits,
    EvseState,
    ExternalLimits,
    OptimizerTarget,
    PhaseValues,
    Powermeter,
    PricePerKwh,
)
from optimizer import optimise
from tests.builders import NOW, at, entry, evse, node

VOLT = 230.0
FAST = ManagerOptions(tick_s=0.01)


def amps(value: float) -> ExternalLimits:
    return ExternalLimits(schedule_import=[entry(NOW, value)])


def granted(limits: list[EnforcedLimits]) -> dict[str, float]:
    """Current per phase granted to each EVSE [A]."""
    return {x.uuid: x.limits_root_side.ac_max_current_A or 0.0 for x in limits
            if x.limits_root_side is not None}


def current_of(manager: EnergyManager) -> dict[str, float]:
    return granted(manager.enforced_limits)


async def settled(manager: EnergyManager) -> dict[str, float]:
    """What the loops do after a change: re-plan, then tick."""
    await manager.replan()
    manager.tick()
    return current_of(manager)


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait (bounded) for the manager's loops to make ``condition`` true."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


class Publications:
    """Every publication from a listener, so a test can wait for the next one."""

    def __init__(self, manager: EnergyManager) -> None:
        self.queue: asyncio.Queue[list[EnforcedLimits]] = asyncio.Queue()
        manager.add_listener(self.queue.put_nowait)

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    async def next(self) -> dict[str, float]:
        return granted(await asyncio.wait_for(self.queue.get(), timeout=5))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def two_evses(max_a: float = 32.0) -> EnergyFlowRequest:
    return node("grid", evse("a"), evse("b"), max_a=max_a)


def one_evse(max_a: float = 63.0, evse_a: float = 32.0) -> EnergyFlowRequest:
    return node("grid", evse("a", evse_a), max_a=max_a)


# ---- publishing ------------------------------------------------------------------------


async def test_subscribe_gets_the_limits_in_force_at_once_then_changes(clock) -> None:
    manager = EnergyManager(two_evses(), planner=instant_plan, clock=clock, options=FAST)
    async with manager, contextlib.aclosing(manager.subscribe()) as stream:
        first = await asyncio.wait_for(anext(stream), timeout=5)
        assert granted(first) == {"a": 16.0, "b": 16.0}
        assert [x.uuid for x in first] == ["a", "b"]
        assert all(x.valid_until == NOW + timedelta(seconds=0.1) for x in first)
        assert all(x.valid_for == 1 for x in first)  # whole seconds, rounded up
        manager.set_external_limits("dso", "grid", amps(20))
        async with asyncio.timeout(5):
            while granted(await anext(stream)) != {"a": 10.0, "b": 10.0}:
                pass


async def test_the_first_limits_exist_before_anyone_subscribes(clock) -> None:
    manager = EnergyManager(two_evses(), planner=instant_plan, clock=clock, options=FAST)
    assert manager.enforced_limits == []
    async with manager:
        assert current_of(manager) == {"a": 16.0, "b": 16.0}
        assert manager.plan is not None and manager.plan.method == "instant allocator"


async def test_limits_carry_the_planned_schedule_from_now(clock) -> None:
    manager = EnergyManager(two_evses(), planner=instant_plan, clock=clock, options=FAST)
    await settled(manager)
    [a, _] = manager.enforced_limits
    assert a.schedule and a.schedule[0].timestamp == NOW
    assert a.schedule[0].limits_to_root.ac_max_current_A == 16.0


async def test_a_failing_listener_does_not_stop_publishing(clock, caplog) -> None:
    manager = EnergyManager(two_evses(), planner=instant_plan, clock=clock)

    def broken(_limits: list[EnforcedLimits]) -> None:
        raise RuntimeError("listener bug")

    seen: list[list[EnforcedLimits]] = []
    manager.add_listener(broken)
    manager.add_listener(seen.append)
    await settled(manager)
    assert len(seen) == 1
    assert "an enforced-limits listener failed" in caplog.text


# ---- external limits (leases) ----------------------------------------------------------


async def test_sources_combine_by_minimum_and_never_overwrite_each_other(clock) -> None:
    manager = EnergyManager(one_evse(), planner=instant_plan, clock=clock)
    manager.set_external_limits("dso", "grid", amps(20))
    assert (await settled(manager))["a"] == 20.0
    manager.set_external_limits("ocpp", "grid", amps(25))  # looser: the 20 A still bind
    assert (await settled(manager))["a"] == 20.0
    manager.set_external_limits("api", "grid", amps(10))
    assert (await settled(manager))["a"] == 10.0
    assert manager.status().evses[0].reason == "grid/api: ac_max_current_A L1"
    assert manager.clear_external_limits("api")
    assert not manager.clear_external_limits("api")
    assert (await settled(manager))["a"] == 20.0
    manager.set_external_limits("dso", "grid", power_limit(NOW, 6_900.0))  # W beside A
    assert (await settled(manager))["a"] == 10.0
    assert sorted(manager.leases.leases) == ["dso", "ocpp"]


async def test_a_lease_on_an_inner_node_limits_only_its_subtree(clock) -> None:
    request = node("grid", node("left", evse("a"), evse("b"), max_a=32), evse("c"), max_a=63)
    manager = EnergyManager(request, planner=instant_plan, clock=clock)
    manager.set_external_limits("dso", "left", amps(12))
    assert await settled(manager) == {"a": 6.0, "b": 6.0, "c": 16.0}


async def test_an_expired_lease_applies_its_failsafe_at_the_next_tick(clock) -> None:
    manager = EnergyManager(one_evse(), planner=instant_plan, clock=clock)
    manager.set_external_limits("dso", "grid", amps(20), ttl_s=60, failsafe=amps(8))
    assert (await settled(manager))["a"] == 20.0
    clock.advance(59)
    manager.tick()
    assert current_of(manager)["a"] == 20.0
    clock.advance(1)
    manager.tick()  # no re-plan needed: the failsafe is a live cap at once
    assert current_of(manager)["a"] == 8.0
    [source] = manager.status().sources
    assert source.in_failsafe and source.binding
    assert (await settled(manager))["a"] == 8.0


async def test_an_expired_lease_without_failsafe_disappears(clock) -> None:
    manager = EnergyManager(one_evse(), planner=instant_plan, clock=clock, options=FAST)
    async with manager:
        manager.set_external_limits("api", "grid", amps(10), ttl_s=5)
        await until(lambda: current_of(manager)["a"] == 10.0)
        clock.advance(5)  # the loops notice the expiry and re-plan by themselves
        await until(lambda: current_of(manager)["a"] == 32.0)
        [source] = manager.status().sources
        assert source.in_failsafe and not source.binding


async def test_unknown_node_or_bad_lease_changes_nothing(clock, tmp_path) -> None:
    path = tmp_path / "state.json"
    manager = EnergyManager(one_evse(), planner=instant_plan, clock=clock, state_path=path)
    manager.set_external_limits("dso", "grid", amps(20))
    before = path.read_bytes()
    with pytest.raises(NotFoundError, match="nowhere"):
        manager.set_external_limits("dso", "nowhere", amps(5))
    with pytest.raises(NotFoundError):
        manager.set_external_limits("dso", "a-typo", amps(5), ttl_s=10)
    with pytest.raises(ConfigError):
        manager.report_grid_meter(MeterFeed((1.0, 1.0, 1.0), 690.0, "NORMAL"))
    assert manager.leases.leases["dso"].limits == amps(20)
    assert path.read_bytes() == before


async def test_a_request_that_does_not_fit_is_refused_and_changes_nothing(clock) -> None:
    manager = EnergyManager(node("grid", node("fuse", evse("a"), max_a=20), max_a=32),
                            planner=instant_plan, clock=clock)
    manager.set_external_limits("dso", "fuse", amps(10))
    assert (await settled(manager))["a"] == 10.0
    with pytest.raises(NotFoundError, match="'fuse'"):
        manager.submit_request(one_evse())  # the lease's node would be gone
    with pytest.raises(RequestError, match="no EVSE"):
        manager.submit_request(node("grid", max_a=32))
    assert (await settled(manager))["a"] == 10.0
    manager.submit_request(node("grid", node("fuse", evse("a", 8)), max_a=32))
    manager.tick()
    assert current_of(manager)["a"] == 8.0


async def test_status_right_after_a_new_tree(clock) -> None:
    manager = EnergyManager(two_evses(), planner=instant_plan, clock=clock)
    await settled(manager)
    manager.submit_request(node("grid", evse("a"), evse("b"), evse("c"), max_a=32))
    status = manager.status()  # before the next tick: the last tick's, consistent
    assert [x.uuid for x in status.evses] == ["a", "b"]
    manager.tick()
    assert [x.uuid for x in manager.status().evses] == ["a", "b", "c"]


# ---- targets, prices, re-plans ---------------------------------------------------------


class CountingPlanner:
    """instant_plan, counting its calls (the manager calls it from a worker thread)."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def __call__(self, problem: Problem, *, rotation: int = 0) -> Plan:
        self.problems.append(problem)
        return instant_plan(problem, rotation=rotation)


async def test_set_target_triggers_a_re_plan(clock) -> None:
    planner = CountingPlanner()
    manager = EnergyManager(two_evses(), planner=planner, clock=clock, options=FAST)
    async with manager:
        await until(lambda: len(planner.problems) >= 1)
        calls = len(planner.problems)
        target = OptimizerTarget(energy_amount_needed=2.0, leave_time=at(120))
        manager.set_target("a", target)
        await until(lambda: len(planner.problems) > calls)
        await until(lambda: manager.status().evses[0].target == target)
        problem = planner.problems[-1]
        assert problem.targets[0] is not None and problem.targets[0].energy_kwh == 2.0
        calls = len(planner.problems)
        manager.set_prices([PricePerKwh(timestamp=NOW, value=0.3)])
        await until(lambda: len(planner.problems) > calls)
        calls = len(planner.problems)
        manager.set_evse_state("b", EvseState.Unplugged)
        await until(lambda: current_of(manager)["b"] == 0.0)
        assert len(planner.problems) > calls


async def test_a_met_target_stops_the_evse_in_the_plan(clock) -> None:
    manager = EnergyManager(two_evses(), planner=instant_plan, clock=clock)
    manager.set_target("a", OptimizerTarget(energy_amount_needed=0.0))
    result = await settled(manager)
    assert result == {"a": 0.0, "b": 16.0}
    assert manager.status().evses[0].reason == "target met"
    manager.set_target("a", None)
    assert (await settled(manager))["a"] == 16.0


async def test_unknown_evse_uuids_raise_not_found_and_change_nothing(clock, tmp_path) -> None:
    path = tmp_path / "state.json"
    manager = EnergyManager(two_evses(), planner=instant_plan, clock=clock, state_path=path)
    manager.set_target("a", OptimizerTarget(energy_amount_needed=5.0))
    await settled(manager)
    before = (path.read_bytes(), manager.status().evses, current_of(manager))
    meter = Powermeter(current_A=PhaseValues(L1=1.0))
    calls: list[Callable[[], object]] = [
        lambda: manager.set_target("nope", OptimizerTarget(energy_amount_needed=1.0)),
        lambda: manager.set_target("grid", None),  # a node, but not an EVSE
        lambda: manager.set_evse_state("nope", EvseState.Charging),
        lambda: manager.report_measurement("nope", meter),
        lambda: manager.preview({"nope": None}),
    ]
    for call in calls:
        with pytest.raises(NotFoundError):
            call()
    manager.tick()
    assert (path.read_bytes(), manager.status().evses, current_of(manager)) == before


async def test_preview_plans_without_applying(clock) -> None:
    manager = EnergyManager(two_evses(), planner=instant_plan, clock=clock)
    await settled(manager)
    plan = manager.preview({"a": OptimizerTarget(energy_amount_needed=0.0)})
    assert plan.current_a[0, 0] == 0.0
    assert manager.status().evses[0].target is None
    assert current_of(manager)["a"] == 16.0


# ---- the grid meter --------------------------------------------------------------------


def three_single_phase() -> EnergyFlowRequest:
    return node("grid", evse("l1", 32, phases=1), evse("l2", 32, phases=1, rotation="L2L3L1"),
                evse("l3", 32, phases=1, rotation="L3L1L2"), max_a=32)


def measured(l1: float = 0.0, l2: float = 0.0, l3: float = 0.0) -> Powermeter:
    return Powermeter(current_A=PhaseValues(L1=l1, L2=l2, L3=l3))


@pytest.mark.parametrize(
    ("meter_a", "ours", "installation_a", "expected"),
    [
        pytest.param((20.0, 10.0, 5.0), {}, None, {"l1": 11.0, "l2": 21.0, "l3": 26.0},
                     id="budget per phase: 32 - household - 1 A margin"),
        pytest.param((30.0, 16.0, 5.0), {"l1": 10.0, "l2": 6.0}, None,
                     {"l1": 11.0, "l2": 21.0, "l3": 26.0},
                     id="our measured draw is not household load"),
        pytest.param((20.0, 10.0, 5.0), {}, 25.0, {"l1": 0.0, "l2": 14.0, "l3": 19.0},
                     id="installation maximum 25 A: L1 has less than the 6 A minimum"),
        pytest.param((40.0, 40.0, 40.0), {}, None, {"l1": 0.0, "l2": 0.0, "l3": 0.0},
                     id="overloaded by the household: nothing"),
    ],
)
async def test_the_grid_meter_budget_per_phase(clock, meter_a, ours, installation_a,
                                               expected) -> None:
    options = ManagerOptions(installation_max_a=installation_a, meter_margin_a=1.0)
    manager = EnergyManager(three_single_phase(), planner=instant_plan, clock=clock,
                            options=options, has_meter=True)
    for uuid in ("l1", "l2", "l3"):
        manager.report_measurement(uuid, measured(ours.get(uuid, 0.0)))
    manager.report_grid_meter(MeterFeed(meter_a, None, "NORMAL"))
    assert await settled(manager) == pytest.approx(expected)
    binding = [x.reason for x in manager.status().evses if x.current_a > 0]
    assert all(reason.startswith("grid meter: ac_max_current_A") for reason in binding)


async def test_an_operator_limit_is_not_shared_with_the_household(clock) -> None:
    """The budget is the connection minus the household; an EV-only limit is not the connection.

    The grid operator's 10 A are for the controllable devices (§14a): household load on the
    meter must not eat into them, as long as the connection itself has room.
    """
    manager = EnergyManager(one_evse(max_a=63), planner=instant_plan, clock=clock,
                            has_meter=True)
    manager.report_measurement("a", measured())
    manager.report_grid_meter(MeterFeed((20.0, 20.0, 20.0), None, "NORMAL"))
    assert (await settled(manager))["a"] == 32.0
    manager.set_external_limits("ocpp", "grid", amps(10))
    assert (await settled(manager))["a"] == 10.0
    assert manager.status().evses[0].reason == "grid/ocpp: ac_max_current_A L1"
    manager.report_grid_meter(MeterFeed((55.0, 20.0, 20.0), None, "NORMAL"))
    assert (await settled(manager))["a"] == 7.0  # 63 - 55 - 1: now the connection binds


async def test_safe_current_at_once_when_the_meter_goes_silent_and_back(clock) -> None:
    options = ManagerOptions(tick_s=0.01, safe_current_a=14.0, installation_max_a=40.0)
    manager = EnergyManager(two_evses(max_a=63), planner=instant_plan, clock=clock,
                            options=options, has_meter=True)
    publications = Publications(manager)
    async with manager:
        assert current_of(manager) == {"a": 7.0, "b": 7.0}  # no reading yet: safe current
        assert "INITIALIZING" in manager.status().evses[0].reason
        for uuid in ("a", "b"):
            manager.report_measurement(uuid, measured())
        manager.report_grid_meter(MeterFeed((9.0, 9.0, 9.0), 6_210.0, "NORMAL"))
        await until(lambda: current_of(manager) == {"a": 15.0, "b": 15.0})  # (40-9-1)/2

        publications.drain()
        manager.report_grid_meter(MeterFeed(None, None, "WARNING"))
        assert await publications.next() == {"a": 7.0, "b": 7.0}  # the very next tick
        status = manager.status()
        assert status.evses[0].reason == "grid meter (WARNING): safe current: " \
            "ac_max_current_A L1"
        assert status.meter is not None and status.meter.state == "WARNING"

        publications.drain()
        manager.report_grid_meter(MeterFeed((9.0, 9.0, 9.0), 6_210.0, "NORMAL"))
        assert await publications.next() == {"a": 15.0, "b": 15.0}


# ---- a re-plan that blocks or times out ------------------------------------------------


class BlockingPlanner:
    """instant_plan that blocks (in its worker thread) while ``block`` is set."""

    def __init__(self) -> None:
        self.block = False
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, problem: Problem, *, rotation: int = 0) -> Plan:
        if self.block:
            self.entered.set()
            self.release.wait(timeout=30)
        return instant_plan(problem, rotation=rotation)


async def test_ticks_go_on_and_respect_every_cap_while_a_re_plan_blocks(clock) -> None:
    planner = BlockingPlanner()
    options = ManagerOptions(tick_s=0.01, plan_budget_s=0.01, safe_current_a=10.0)
    manager = EnergyManager(two_evses(), planner=planner, clock=clock, options=options,
                            has_meter=True)
    manager.report_grid_meter(MeterFeed((0.0, 0.0, 0.0), 0.0, "NORMAL"))
    publications = Publications(manager)
    try:
        async with manager:
            assert current_of(manager) == {"a": 15.5, "b": 15.5}
            planner.block = True
            manager.set_target("a", OptimizerTarget(energy_amount_needed=10.0))
            await until(planner.entered.is_set)
            publications.drain()
            manager.set_external_limits("dso", "grid", amps(20))  # re-plan still blocked
            assert await publications.next() == {"a": 10.0, "b": 10.0}
            manager.report_grid_meter(MeterFeed(None, None, "WARNING"))
            assert await publications.next() == {"a": 10.0, "b": 0.0}
            for _ in range(3):  # ticks keep renewing the limits
                assert await publications.next() == {"a": 10.0, "b": 0.0}
            assert not planner.release.is_set()
    finally:
        planner.release.set()


async def test_a_new_tree_applies_at_the_next_tick_while_a_re_plan_blocks(clock) -> None:
    """A charger stack that lowers a limit in its request must not wait for the planner."""
    planner = BlockingPlanner()
    options = ManagerOptions(tick_s=0.01, plan_budget_s=0.01)
    manager = EnergyManager(two_evses(), planner=planner, clock=clock, options=options)
    publications = Publications(manager)
    try:
        async with manager:
            planner.block = True
            manager.set_target("a", OptimizerTarget(energy_amount_needed=10.0))
            await until(planner.entered.is_set)
            publications.drain()
            manager.submit_request(node("grid", evse("a", 10), evse("b"), max_a=32))
            assert await publications.next() == {"a": 10.0, "b": 16.0}
            publications.drain()
            manager.submit_request(node("grid", evse("a"), evse("b"), evse("c"), max_a=32))
            assert await publications.next() == pytest.approx(
                {"a": 32 / 3, "b": 32 / 3, "c": 32 / 3}, abs=0.01)
            manager.set_target("c", OptimizerTarget(energy_amount_needed=1.0))  # known now
            planner.release.set()
            await until(lambda: manager.plan is not None and manager.plan.problem.evse_count == 3)
    finally:
        planner.release.set()


@pytest.mark.slow
async def test_a_re_plan_that_times_out_leaves_the_site_safe(clock, caplog) -> None:
    planner = BlockingPlanner()
    # the manager allows 2 × budget + 5 s before it gives up on a plan
    options = ManagerOptions(tick_s=0.01, plan_budget_s=0.001)
    manager = EnergyManager(two_evses(), planner=planner, clock=clock, options=options)
    publications = Publications(manager)
    try:
        async with manager:
            planner.block = True
            await manager.replan()  # returns after the timeout, without a new plan
            assert "re-plan did not finish within 5.0 s" in caplog.text
            assert manager.plan is None  # the instant allocator shares the limits now
            publications.drain()
            manager.set_external_limits("dso", "grid", amps(12))
            assert await publications.next() == {"a": 6.0, "b": 6.0}
    finally:
        planner.release.set()


async def test_a_planner_error_keeps_the_last_plan(clock, caplog) -> None:
    fail = False

    def planner(problem: Problem, *, rotation: int = 0) -> Plan:
        if fail:
            raise RuntimeError("solver crashed")
        return instant_plan(problem, rotation=rotation)

    manager = EnergyManager(two_evses(), planner=planner, clock=clock, options=FAST)
    async with manager:
        fail = True
        manager.set_external_limits("dso", "grid", amps(12))
        await until(lambda: "re-plan failed" in caplog.text)
        await until(lambda: current_of(manager) == {"a": 6.0, "b": 6.0})


# ---- restart -----------------------------------------------------------------------------


async def test_restart_restores_leases_targets_and_prices(clock, tmp_path) -> None:
    path = tmp_path / "manager.json"
    first = EnergyManager(two_evses(), planner=instant_plan, clock=clock, state_path=path)
    target = OptimizerTarget(energy_amount_needed=12.5, leave_time=at(300))
    prices = [PricePerKwh(timestamp=at(0), value=0.31), PricePerKwh(timestamp=at(60), value=0.12)]
    first.set_external_limits("dso", "grid", amps(20), ttl_s=600, failsafe=amps(8))
    first.set_external_limits("ocpp", "grid", power_limit(NOW, 11_000.0))
    first.set_target("a", target)
    first.set_prices(list(reversed(prices)))
    await settled(first)
    assert not list(tmp_path.glob(".manager.json.*"))  # written atomically, no temp left

    clock.advance(60)
    second = EnergyManager(two_evses(), planner=instant_plan, clock=clock, state_path=path)
    assert second.leases == first.leases
    assert second.prices == prices
    await settled(second)
    assert second.status().evses[0].target == target
    assert current_of(second) == current_of(first)
    clock.advance(600)  # the restored lease still expires on time: its failsafe applies
    assert await settled(second) == {"a": 7.97, "b": 0.0}  # b's car may still draw 7.97 A
    clock.advance(second.options.response_s)
    assert await settled(second) == {"a": 8.0, "b": 0.0}


async def test_restart_drops_a_lease_whose_node_is_gone(clock, tmp_path, caplog) -> None:
    path = tmp_path / "manager.json"
    before = node("grid", node("fuse", evse("a"), max_a=20), max_a=32)
    EnergyManager(before, planner=instant_plan, clock=clock, state_path=path
                  ).set_external_limits("dso", "fuse", amps(10))
    after = EnergyManager(one_evse(), planner=instant_plan, clock=clock, state_path=path)
    assert "dropping external limits 'dso'" in caplog.text
    assert (await settled(after))["a"] == 32.0


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"{not json", id="not JSON"),
        pytest.param(b"[1, 2]", id="not an object"),
        pytest.param(b'{"leases": [{"name": "x"}]}', id="a lease without fields"),
        pytest.param(b'{"targets": {"a": {"energy_amount_needed": -3}}}', id="a bad target"),
        pytest.param(b'{"prices": [{"timestamp": "yesterday", "value": 1}]}', id="bad price"),
        pytest.param(b"\xff\xfe", id="not UTF-8"),
    ],
)
def test_a_corrupt_state_file_is_a_config_error_naming_the_file(clock, tmp_path,
                                                                 content) -> None:
    path = tmp_path / "manager.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=str(path)):
        EnergyManager(two_evses(), planner=instant_plan, clock=clock, state_path=path)
    assert path.read_bytes() == content  # left for a person to look at


def test_state_is_plain_json(clock, tmp_path) -> None:
    path = tmp_path / "manager.json"
    manager = EnergyManager(two_evses(), planner=instant_plan, clock=clock, state_path=path)
    manager.set_target("b", OptimizerTarget(energy_amount_needed=3.0))
    assert json.loads(path.read_text()) == {
        "leases": [], "targets": {"b": {"energy_amount_needed": 3.0}}, "prices": []}


# ---- status ------------------------------------------------------------------------------


async def test_status_names_the_binding_source(clock) -> None:
    manager = EnergyManager(two_evses(max_a=63), planner=instant_plan, clock=clock)
    manager.set_external_limits("dso", "grid", power_limit(NOW, 9_660.0))
    manager.set_external_limits("loose", "grid", amps(60), ttl_s=60)
    await settled(manager)
    status = manager.status()
    assert [(x.uuid, x.current_a, x.reason) for x in status.evses] == [
        ("a", pytest.approx(7.0), "grid/dso: total_power_W"),
        ("b", pytest.approx(7.0), "grid/dso: total_power_W")]
    assert [(s.name, s.binding, s.expires_at) for s in status.sources] == [
        ("dso", True, None), ("loose", False, NOW + timedelta(seconds=60))]
    assert status.plan_method == "instant allocator" and status.planned_at == NOW
    manager.clear_external_limits("dso")
    await settled(manager)
    assert [x.reason for x in manager.status().evses] == ["a: ac_max_current_A",
                                                          "b: ac_max_current_A"]


async def test_status_with_the_optimiser(clock) -> None:
    def planner(problem: Problem, *, rotation: int = 0) -> Plan:
        return optimise(problem, time_budget_s=5, rotation=rotation)

    manager = EnergyManager(two_evses(), planner=planner, clock=clock)
    manager.set_prices([PricePerKwh(timestamp=NOW, value=0.40),
                        PricePerKwh(timestamp=at(60), value=0.10)])
    manager.set_target("a", OptimizerTarget(energy_amount_needed=5.0, leave_time=at(180)))
    await settled(manager)
    status = manager.status()
    assert status.plan_method != "instant allocator"
    a = status.evses[0]
    assert a.planned_kwh == pytest.approx(5.0, abs=0.05) and a.shortfall_kwh == 0.0
    assert a.current_a == 0.0  # expensive now; charges at the cheap price later


# ---- phase switching end to end ------------------------------------------------------------


async def test_phase_switching_with_hysteresis(clock) -> None:
    options = ManagerOptions(switching=SwitchingOptions(power_hysteresis_w=200.0,
                                                        time_hysteresis_s=60.0))
    request = node("grid", evse("a", 16, switchable=True), max_a=32)
    manager = EnergyManager(request, planner=instant_plan, clock=clock, options=options)

    async def limit(watts: float) -> tuple[int, float]:
        manager.set_external_limits("dso", "grid", power_limit(NOW, watts))
        await settled(manager)
        return phases_and_amps()

    def phases_and_amps() -> tuple[int, float]:
        [res] = [x.limits_root_side for x in manager.enforced_limits]
        assert res is not None
        return res.ac_max_phase_count or 0, res.ac_max_current_A or 0.0

    assert await limit(11_000) == (3, 15.94)
    assert await limit(3_000) == (1, 13.04)  # below 3 × 6 A: one phase at once
    assert await limit(5_000) == (1, 16.0)  # fits three phases, but not for 60 s yet
    clock.advance(59)
    manager.tick()
    assert phases_and_amps() == (1, 16.0)
    clock.advance(1)
    manager.tick()
    assert phases_and_amps() == (3, 7.24)  # 5000 W / 690 V
    assert await limit(4_200) == (3, 6.08)  # in the band: stays on three
    assert await limit(3_000) == (3, 0.0)  # one switch per 60 s: it waits, paused
    assert manager.status().evses[0].reason.endswith("phases: held at 3 until 12:02 UTC")
    clock.advance(60)
    manager.tick()
    assert phases_and_amps() == (1, 13.04)
    manager.set_evse_state("a", EvseState.Unplugged)
    await settled(manager)
    manager.set_evse_state("a", EvseState.Charging)  # a new session starts on three phases
    assert await limit(5_000) == (3, 7.24)


# ---- the tick never exceeds a limit ------------------------------------------------------


EVSE_SPEC = st.tuples(st.sampled_from([6.0, 10.0, 16.0, 32.0]), st.sampled_from([1, 3]),
                      st.sampled_from(["L1L2L3", "L2L3L1", "L3L1L2"]), st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    evses=st.lists(EVSE_SPEC, min_size=1, max_size=4),
    fuse_a=st.sampled_from([10.0, 20.0, 32.0, 63.0]),
    lease_a=st.none() | st.floats(0, 63),
    lease_w=st.none() | st.floats(0, 40_000),
    meter=st.none() | st.tuples(st.floats(0, 60), st.floats(0, 60), st.floats(0, 60)),
    drawing=st.lists(st.floats(0, 32), min_size=4, max_size=4),
)
def test_the_tick_never_exceeds_any_limit(evses, fuse_a, lease_a, lease_w, meter,
                                          drawing) -> None:
    request = node("grid", *[
        evse(f"e{i}", max_a, phases=phases, rotation=rotation, switchable=switchable)
        for i, (max_a, phases, rotation, switchable) in enumerate(evses)], max_a=fuse_a)
    options = ManagerOptions(safe_current_a=8.0, meter_margin_a=1.0)
    manager = EnergyManager(request, planner=instant_plan, clock=ManualClock(NOW),
                            options=options, has_meter=True)
    if lease_a is not None:
        manager.set_external_limits("dso", "grid", amps(lease_a))
    if lease_w is not None:
        manager.set_external_limits("api", "grid", power_limit(NOW, lease_w))
    ours = np.zeros(3)
    for i, (_, phases, rotation, _) in enumerate(evses):
        manager.report_measurement(f"e{i}", measured(*[drawing[i]] * phases))
        for k in range(phases):
            ours[int(rotation[1 + 2 * k]) - 1] += drawing[i]
    cap = np.array([min(fuse_a, lease_a if lease_a is not None else np.inf)] * 3)
    if meter is None:
        manager.report_grid_meter(MeterFeed(None, None, "WARNING"))
        cap = np.minimum(cap, 8.0)
    else:
        total = np.asarray(meter) + ours  # the meter sees the household and our EVSEs
        manager.report_grid_meter(MeterFeed(tuple(total), None, "NORMAL"))
        cap = np.minimum(cap, np.maximum(fuse_a - np.asarray(meter) - 1.0, 0.0))
    manager.tick()
    per_phase, watts = np.zeros(3), 0.0
    for i, res in enumerate(x.limits_root_side for x in manager.enforced_limits):
        assert res is not None
        max_a, phases, rotation, _ = evses[i]
        current, used = res.ac_max_current_A or 0.0, res.ac_max_phase_count or 0
        assert 0.0 <= current <= max_a + 1e-6
        assert current == 0.0 or current >= 6.0 - 1e-6  # all or nothing
        if current > 0:
            assert used <= phases
            for k in range(used):
                per_phase[int(rotation[1 + 2 * k]) - 1] += current
            watts += res.total_power_W or 0.0
    assert np.all(per_phase <= cap + 1e-6)
    if lease_w is not None:
        assert watts <= lease_w + 1e-3


def test_live_sources_are_applied_every_tick(clock) -> None:
    value = {"w": 11_000.0}

    def live(now):
        return [ExternalSource("formula", "grid", power_limit(now, value["w"]))]

    manager = EnergyManager(two_evses(), planner=instant_plan, clock=clock, live_sources=live)
    manager.tick()
    assert current_of(manager) == pytest.approx({"a": 7.97, "b": 7.97})
    value["w"] = 4_140.0
    manager.tick()
    assert sum(current_of(manager).values()) == pytest.approx(6.0)
    assert "grid/formula: total_power_W" in [x.reason for x in manager.status().evses]


def test_published_limits_are_renewed_before_they_expire(clock) -> None:
    """Unchanged limits are rebuilt every valid_ticks / 2 ticks, staggered by EVSE."""
    options = ManagerOptions(tick_s=1.0, valid_ticks=10)
    manager = EnergyManager(two_evses(), planner=instant_plan, clock=clock, options=options)
    for _ in range(30):
        manager.tick()
        for limits in manager.enforced_limits:
            assert limits.valid_until is not None
            assert limits.valid_until - clock.now() >= timedelta(seconds=5)
        clock.advance(1.0)


def test_valid_for_and_until_agree(clock) -> None:
    options = ManagerOptions(tick_s=0.5, valid_ticks=6)
    manager = EnergyManager(two_evses(), planner=instant_plan, clock=clock, options=options)
    manager.tick()
    for limits in manager.enforced_limits:
        assert limits.valid_until == NOW + timedelta(seconds=3)
        assert limits.valid_for == 3
        assert EnforcedLimits.model_validate(limits.model_dump()) == limits


@pytest.mark.parametrize("tick_s", [0.01, 0.05, 1.0])
def test_an_evse_applies_what_the_manager_publishes(clock, tick_s) -> None:
    """valid_for is whole seconds: a short tick must not make it 0 (expired on arrival)."""
    options = ManagerOptions(tick_s=tick_s, valid_ticks=10)
    manager = EnergyManager(two_evses(), planner=instant_plan, clock=clock, options=options)
    receivers = {uuid: LimitReceiver(uuid, clock=clock) for uuid in ("a", "b")}
    manager.add_listener(lambda limits: [receivers[x.uuid].apply(x) for x in limits])
    manager.tick()
    assert {uuid: r.current_a() for uuid, r in receivers.items()} == {"a": 16.0, "b": 16.0}
    clock.advance(10 * tick_s)  # no tick for the whole validity: the EVSEs fall back
    assert {uuid: r.current_a() for uuid, r in receivers.items()} == {"a": 0.0, "b": 0.0}


def test_logging_is_quiet_on_a_normal_tick(clock, caplog) -> None:
    caplog.set_level(logging.WARNING)
    manager = EnergyManager(two_evses(), planner=instant_plan, clock=clock)
    for _ in range(3):
        manager.tick()
    assert caplog.records == []


# ---- reservations (an offline charger draws without our say) ------------------------------


async def test_a_reservation_is_served_first_in_every_rotation(clock) -> None:
    """10 A under the fuse, 6 A minimum: the reserved EVSE always holds its 8 A, never rotates
    out; the other gets what is left (2 A: below its minimum, so 0)."""
    manager = EnergyManager(two_evses(max_a=10.0), planner=instant_plan, clock=clock)
    manager.reserve("b", "offline:b", amps(8.0))
    for _ in range(4):
        assert await settled(manager) == {"a": 0.0, "b": 8.0}
        clock.advance(manager.options.rotation_period_s)
    manager.reserve("b", "offline:b", None)
    assert "offline:b" not in manager.leases.leases
    await settled(manager)
    clock.advance(manager.options.response_s)  # until b's car no longer draws its 8 A
    assert sorted((await settled(manager)).values()) == [0.0, 10.0]
