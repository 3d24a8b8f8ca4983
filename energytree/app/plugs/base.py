"""A plug: one section of the site file, its model, and what it runs while the site runs.

The running site (``energytree.app.runtime.Service``) creates one plug per section the site
file has, in the registry's order, starts each, and stops them in reverse. A plug reaches the
site only through its public members: the manager, the audit log, the variables, the grid
meter's last reading, the §14a rules and ``operator_limit``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from energytree.tasks import cancel_and_wait

if TYPE_CHECKING:
    from energytree.app.runtime import Service

__all__ = ["Plug"]

SectionT = TypeVar("SectionT", bound=BaseModel)


class Plug(Generic[SectionT]):
    """One site-file section and the part of the service it runs.

    Subclasses name their ``section`` and its ``model``, open what they run in ``start``
    (registering each with ``closing`` and ``spawn``), and override what they need of
    ``links``, ``serves`` and ``note``.
    """

    section: ClassVar[str]
    model: ClassVar[type[BaseModel]]
    summary: ClassVar[str]  # one line for the site-file reference
    always: ClassVar[bool] = False  # the section is there with its defaults when not written
    limit_source: ClassVar[str | None] = None  # the external limit on the root it owns

    def __init__(self, site: Service, config: SectionT) -> None:
        self.site = site
        self.config = config
        self._tasks: list[asyncio.Task[None]] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []

    @classmethod
    def wanted(cls, site: Service) -> bool:
        """Whether this run uses the section (the simulation only with ``--simulate``)."""
        return True

    async def start(self) -> None:
        """Open sockets and start tasks; a ``ConfigError`` names what to fix."""

    async def stop(self) -> None:
        """Cancel this plug's tasks, then close what it opened, the last opened first."""
        await cancel_and_wait(self._tasks)
        for close in reversed(self._closers):
            await close()

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` in the background until the plug stops."""
        self._tasks.append(asyncio.create_task(work, name=f"energytree-{name}"))

    def closing(self, close: Callable[[], Awaitable[None]]) -> None:
        """Await ``close`` when the plug stops (a server, a client, a file)."""
        self._closers.append(close)

    def links(self) -> dict[str, bool]:
        """Protocol links and whether each is up now (for the dashboard and ``/metrics``)."""
        return {}

    def serves(self, evse: str) -> bool:
        """Whether this plug reports the EVSE's sessions itself (from its own protocol)."""
        return False

    def note(self) -> str | None:
        """A line for the status block, when something needs saying."""
        return None
