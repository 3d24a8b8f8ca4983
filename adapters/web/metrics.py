"""``/metrics`` in the Prometheus text format: timings observed as they happen, the rest
read from the live snapshot at scrape time (so a scrape always sees one consistent state)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from adapters.meter.client import MeterState
from adapters.web.snapshot import PHASE_NAMES

__all__ = ["CONTENT_TYPE", "SiteMetrics", "plan_gap"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
TICK_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
PLAN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
GAP = re.compile(r"\bgap (-?[0-9.]+) %")
METER_STATES = tuple(state.value for state in MeterState)
P = ParamSpec("P")
R = TypeVar("R")

Snapshot = dict[str, Any]


def plan_gap(notes: list[str]) -> float | None:
    """The optimiser's relative gap above its LP bound, as its plan note reports it."""
    for note in notes:
        found = GAP.search(note)
        if found:
            return float(found.group(1)) / 100.0
    return None


class SiteMetrics:
    """The service's metrics registry.

    Usage::

        metrics = SiteMetrics()
        plan = metrics.timed_plan(planner)        # observes every plan's duration
        metrics.watch(snapshot_provider)          # gauges read at scrape time
        text = metrics.exposition()
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tick_seconds = Histogram(
            "energytree_tick_duration_seconds", "Time one realtime tick took",
            buckets=TICK_BUCKETS, registry=self.registry)
        self.plan_seconds = Histogram(
            "energytree_plan_solve_duration_seconds", "Time one full re-plan took",
            buckets=PLAN_BUCKETS, registry=self.registry)

    def timed_plan(self, planner: Callable[P, R]) -> Callable[P, R]:
        """``planner``, observing how long each call takes (it runs in a worker thread)."""
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            with self.plan_seconds.time():
                return planner(*args, **kwargs)
        return timed

    def observe_tick(self, seconds: float) -> None:
        """One tick of the manager's loop took ``seconds``."""
        self.tick_seconds.observe(seconds)

    def watch(self, snapshot: Callable[[], Snapshot]) -> None:
        """Export the live gauges from ``snapshot()`` at every scrape."""
        self.registry.register(_LiveCollector(snapshot))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _LiveCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list:  # nothing up front: the gauges depend on the site
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        snap = self._snapshot()
        yield from _evse_gauges(snap)
        yield from _node_gauges(snap)
        yield from _source_gauges(snap)
        yield from _meter_gauges(snap)
        yield from _plan_gauges(snap)
        up = GaugeMetricFamily("energytree_connection_up",
                               "1 while a protocol connection is up", labels=["protocol"])
        for name, connected in sorted(snap["connections"].items()):
            up.add_metric([name], 1.0 if connected else 0.0)
        yield up


def _evse_gauges(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    granted = GaugeMetricFamily("energytree_evse_granted_current_amperes",
                                "Current granted per phase", labels=["uuid", "phase"])
    measured = GaugeMetricFamily("energytree_evse_measured_current_amperes",
                                 "Current measured per phase", labels=["uuid", "phase"])
    for evse in snap["evses"]:
        for k, phase in enumerate(PHASE_NAMES):
            granted.add_metric([evse["uuid"], phase],
                               evse["current_a"] if k < evse["phases"] else 0.0)
            value = evse["measured"]["current_a"][k]
            if value is not None:
                measured.add_metric([evse["uuid"], phase], value)
    yield granted
    yield measured


def _node_gauges(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    amps = GaugeMetricFamily("energytree_node_headroom_amperes",
                             "Cap minus the EVSEs' draw below the node, per phase",
                             labels=["node", "phase"])
    watts = GaugeMetricFamily("energytree_node_headroom_watts",
                              "Power cap minus the EVSEs' power below the node", labels=["node"])
    for node in snap["tree"]:
        for phase, value in zip(PHASE_NAMES, node["headroom_a"], strict=True):
            if value is not None:
                amps.add_metric([node["uuid"], phase], value)
        if node["limit_w"] is not None:
            watts.add_metric([node["uuid"]], node["limit_w"] - (node["power_w"] or 0.0))
    yield amps
    yield watts


def _source_gauges(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    """One sample per label set: two caps of one kind on one node export the tighter one."""
    values: dict[tuple[str, str, str], float] = {}
    failsafe: dict[str, bool] = {}
    for source in snap["sources"]:
        if source["value"] is not None:
            key = (source["name"], source["node"], source["unit"] or "")
            values[key] = min(source["value"], values.get(key, math.inf))
        failsafe[source["name"]] = failsafe.get(source["name"], False) or source["failsafe"]
    limit = GaugeMetricFamily("energytree_external_limit", "External limit in force, by source",
                              labels=["source", "node", "unit"])
    for key, value in sorted(values.items()):
        limit.add_metric(list(key), value)
    yield limit
    flag = GaugeMetricFamily("energytree_external_limit_failsafe",
                             "1 while the source's failsafe applies", labels=["source"])
    for name, on in sorted(failsafe.items()):
        flag.add_metric([name], 1.0 if on else 0.0)
    yield flag


def _meter_gauges(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    meter = snap["meter"]
    if meter is None:
        return
    state = GaugeMetricFamily("energytree_grid_meter_state", "1 for the grid meter's state",
                              labels=["state"])
    for name in sorted({*METER_STATES, meter["state"]}):
        state.add_metric([name], 1.0 if name == meter["state"] else 0.0)
    yield state
    amps = GaugeMetricFamily("energytree_grid_meter_current_amperes", "Grid meter per phase",
                             labels=["phase"])
    for phase, value in zip(PHASE_NAMES, meter["current_a"], strict=True):
        if value is not None:
            amps.add_metric([phase], value)
    yield amps
    if meter["power_w"] is not None:
        yield GaugeMetricFamily("energytree_grid_meter_power_watts", "Grid meter active power",
                                value=meter["power_w"])


def _plan_gauges(snap: Snapshot) -> Iterator[GaugeMetricFamily]:
    gap = plan_gap(snap["plan"]["notes"])
    if gap is not None:
        yield GaugeMetricFamily("energytree_plan_gap_ratio",
                                "Optimiser plan's relative gap above its LP bound", value=gap)
