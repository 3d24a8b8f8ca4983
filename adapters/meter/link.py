"""What every Modbus TCP poller needs: one connection with reconnect back-off, and a poll loop.

The grid meter client and the ripple-control receiver both read a device every few seconds
and must never leave a half-open socket behind, never hammer a device that refuses, and never
die quietly (their last value would look current forever). Usage::

    link = ModbusLink("127.0.0.1", 502, timeout_s=2.0, reconnect_s=(1.0, 30.0))
    client = await link.client()        # connects on demand; MeterError while backing off
    link.close(reconnect_later=True)    # after transport trouble
    loop = PollLoop("grid meter 127.0.0.1:502", poll, interval_s=1.0)
    await loop.start(); await loop.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from energytree.errors import MeterError
from energytree.tasks import cancel_and_wait

__all__ = ["ModbusLink", "PollLoop", "modbus_errors"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def modbus_errors(where: str) -> Iterator[None]:
    """Translate pymodbus, socket and timeout failures into MeterError at the seam."""
    try:
        yield
    except (ModbusException, OSError, TimeoutError) as exc:  # OSError covers refused/reset
        raise MeterError(f"{where}: {str(exc) or type(exc).__name__}") from exc


class ModbusLink:
    """One Modbus TCP client, connected on demand; after a failed connect or ``close(
    reconnect_later=True)`` the next attempt waits, the wait doubling from the first to the
    last of ``reconnect_s`` (0, 0: at once)."""

    def __init__(self, host: str, port: int, timeout_s: float, *,
                 reconnect_s: tuple[float, float] = (0.0, 0.0),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._reconnect_s, self._clock = reconnect_s, clock
        self._backoff_s = reconnect_s[0]
        self._next_connect_at = clock()
        self._client: AsyncModbusTcpClient | None = None

    async def client(self) -> AsyncModbusTcpClient:
        """The connected client; MeterError if it cannot connect (or waits to try again)."""
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        wait_s = self._next_connect_at - self._clock()
        if wait_s > 0:
            raise MeterError(f"not connected; next attempt in {wait_s:.0f} s")
        client = AsyncModbusTcpClient(
            self.host, port=self.port, timeout=self.timeout_s,
            retries=0, reconnect_delay=0,  # we reconnect ourselves, with back-off
        )
        try:
            with modbus_errors("connect failed"):
                connected = await client.connect()
            if not connected:
                raise MeterError(
                    f"cannot connect (refused, or no answer in {self.timeout_s:g} s)")
        except BaseException:  # also on cancellation: never leave a half-open socket behind
            client.close()
            self._back_off()
            raise
        self._client = client
        self._backoff_s = self._reconnect_s[0]
        return client

    def close(self, *, reconnect_later: bool = False) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
        if reconnect_later:
            self._back_off()

    def _back_off(self) -> None:
        self._next_connect_at = self._clock() + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, self._reconnect_s[1])


class PollLoop:
    """Calls ``poll`` every ``interval_s`` in a background task named ``name``."""

    def __init__(self, name: str, poll: Callable[[], Awaitable[object]], interval_s: float
                 ) -> None:
        self.name, self._poll, self._interval_s = name, poll, interval_s
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)
            self._task.add_done_callback(_log_crash)

    async def stop(self) -> None:
        """Safe to call twice; a crash was already logged when it happened."""
        task, self._task = self._task, None
        await cancel_and_wait([task])

    async def _run(self) -> None:
        while True:
            await self._poll()
            await asyncio.sleep(self._interval_s)


def _log_crash(task: asyncio.Task[None]) -> None:
    """A poller that dies must say so: its last value would otherwise look current forever."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped by an error", task.get_name(), exc_info=task.exception())
