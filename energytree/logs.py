"""Logs a person can act on: libraries kept quiet, repeated client errors counted, not listed.

energytree reports each fault itself: once when it starts (warning), once when it escalates
(error) and once when it ends ("recovered", with a count of what happened in between). The
libraries underneath would otherwise say the same things every few seconds (pymodbus: "No
response received …" on every poll of a silent meter), dump bytes, or print a traceback for
every malformed request a scanner sends; ``tame_library_loggers`` sets them to our levels.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LIBRARY_LEVELS", "RateLimitedLog", "tame_library_loggers"]

# What each library may say on its own; our adapters report the faults these would repeat.
LIBRARY_LEVELS = {
    "pymodbus": logging.CRITICAL,  # every failed poll, and hex dumps at DEBUG
    "websockets": logging.ERROR,  # handshakes of scanners, closed connections
    "aiohttp.access": logging.WARNING,  # one line per request
    "aiohttp.server": logging.WARNING,  # client errors go through a RateLimitedLog filter
    "aiohttp.web": logging.WARNING,
    "grpc": logging.WARNING,
    "hpack": logging.WARNING,
}


def tame_library_loggers(verbose: bool = False) -> None:
    """Set the libraries' loggers to our levels (``verbose`` lets their warnings through).

    gRPC's C core writes to stderr itself ("E… add_port.cc … Failed to add port"): its level
    comes from ``GRPC_VERBOSITY``, read when grpc is first imported, so call this before.
    """
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR" if verbose else "NONE")
    for name, level in LIBRARY_LEVELS.items():
        logging.getLogger(name).setLevel(min(level, logging.WARNING) if verbose else level)


@dataclass
class _Burst:
    since: float
    count: int = 0
    last: str = ""


class RateLimitedLog:
    """At most one line per kind and window: the first event, then a count of the rest.

    Usage::

        door = RateLimitedLog(logging.getLogger("energytree.http"), window_s=60)
        door.note("failed login", "127.0.0.1 GET /cnf")   # logged
        door.note("failed login", "127.0.0.1 GET /cnf")   # counted; a line per minute at most
    """

    def __init__(self, logger: logging.Logger, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic,
                 level: int = logging.WARNING) -> None:
        self.logger = logger
        self.window_s = window_s
        self.level = level
        self._clock = clock
        self._bursts: dict[str, _Burst] = {}

    def note(self, kind: str, detail: str) -> None:
        """One event of ``kind``; ``detail`` says what it was (who, which request)."""
        now = self._clock()
        burst = self._bursts.get(kind)
        if burst is not None and now - burst.since < self.window_s:
            burst.count += 1
            burst.last = detail
            return
        if burst is not None and burst.count:
            self.logger.log(self.level, "%d more %s in the last %.0f s (latest: %s)",
                            burst.count + 1, kind, now - burst.since, detail)
            self._bursts[kind] = _Burst(now)
            return
        self.logger.log(self.level, "%s: %s (repeats are counted, one line per %.0f s)",
                        kind, detail, self.window_s)
        self._bursts[kind] = _Burst(now)
