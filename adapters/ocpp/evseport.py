"""The gateway's port to the charger side: session events in, the supplier's commands out.

Whatever drives the EVSEs — the CSMS towards real OCPP chargers, an embedding charger stack,
or the simulation — feeds ``EvseEvent``s to an ``EventSink`` (the ``Gateway``, or a bare
``SessionTracker`` when no backend is configured) and answers ``EvseCommands``.
``EmbeddedEvses`` answers them for EVSEs energytree runs itself; ``SimulatedFeed`` turns
``SimulatedEvse`` steps into events. Usage::

    gateway = Gateway(config, manager, evses)          # EmbeddedEvses by default
    feed = SimulatedFeed(gateway)
    feed.poll(simulated, clock.now())                  # after each simulation step
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from energytree.clock import Clock
from energytree.sessions import Authorized, EvseEvent, MeterReading, StateChanged, Stopped

if TYPE_CHECKING:
    from energytree.types import EvseState, Powermeter

__all__ = ["EmbeddedEvses", "EventSink", "EvseCommands", "SimulatedFeed", "SteppedEvse"]

LOG = logging.getLogger(__name__)


class EventSink(Protocol):
    """Takes the charger side's events (``Gateway.feed``, ``SessionTracker.feed``)."""

    def feed(self, event: EvseEvent) -> None: ...


class EvseCommands(Protocol):
    """What the supplier may ask of one EVSE; True means Accepted.

    ``get_configuration`` gets 1.6 keys or 2.0.1 ``Component.Variable`` names (empty: all) and
    returns the known ones with their values.
    """

    async def remote_start(self, evse: str, id_tag: str) -> bool: ...

    async def remote_stop(self, evse: str) -> bool: ...

    async def reset(self, evse: str, hard: bool) -> bool: ...

    async def get_configuration(self, evse: str, keys: Sequence[str]) -> dict[str, str]: ...


class EmbeddedEvses:
    """Answers for EVSEs energytree runs itself: a remote start authorises the id tag, a
    remote stop ends the session; reset is accepted and left to ``on_reset`` if given."""

    def __init__(self, feed: Callable[[EvseEvent], None], clock: Clock,
                 settings: Mapping[str, str] = MappingProxyType({}),
                 on_reset: Callable[[str, bool], None] | None = None) -> None:
        self._feed = feed
        self._clock = clock
        self.settings = dict(settings)
        self._on_reset = on_reset

    async def remote_start(self, evse: str, id_tag: str) -> bool:
        self._feed(Authorized(evse, id_tag, self._clock.now()))
        return True

    async def remote_stop(self, evse: str) -> bool:
        self._feed(Stopped(evse, self._clock.now(), "Remote"))
        return True

    async def reset(self, evse: str, hard: bool) -> bool:
        LOG.info("EVSE %s: %s reset requested by the supplier", evse, "hard" if hard else "soft")
        if self._on_reset is not None:
            self._on_reset(evse, hard)
        return True

    async def get_configuration(self, evse: str, keys: Sequence[str]) -> dict[str, str]:
        wanted = keys or list(self.settings)
        return {k: self.settings[k] for k in wanted if k in self.settings}


class SteppedEvse(Protocol):
    """What ``SimulatedFeed`` reads of a simulated EVSE after each step."""

    uuid: str
    import_wh: float

    @property
    def state(self) -> EvseState: ...

    def measurement(self) -> Powermeter: ...


class SimulatedFeed:
    """Events from simulated EVSEs: the meter every poll, the state when it changed."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self._states: dict[str, EvseState] = {}

    def poll(self, evses: Iterable[SteppedEvse], now: datetime) -> None:
        for sim in evses:
            meter = sim.measurement()
            power = meter.power_W.total if meter.power_W else None
            self.sink.feed(MeterReading(sim.uuid, sim.import_wh, power or 0.0, now))
            if self._states.get(sim.uuid) != sim.state:
                self._states[sim.uuid] = sim.state
                self.sink.feed(StateChanged(sim.uuid, sim.state, now))
