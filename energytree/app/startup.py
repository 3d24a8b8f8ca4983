"""Start-up failures a person can fix: which section, which port, what to change.

A listener that cannot bind is the most common start-up failure (a second instance, another
program on 8080, a port below 1024 without the right). Its library says so with a traceback
or a bare ``OSError``; ``listening`` turns that into one ``ConfigError`` line that names the
site-file section and the port, and the CLI exits with status 2.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

from energytree.errors import ConfigError

__all__ = ["listening"]


@contextlib.contextmanager
def listening(section: str, host: str, port: int) -> Iterator[None]:
    """Name ``section`` and the port when the listener started inside cannot bind."""
    hint = (f"stop the program that uses port {port} or set another {section}.port "
            "in the site file")
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE or "address already in use" in str(exc).lower():
            raise ConfigError(f"{section}: port {port} on {host} is already in use: "
                              f"{hint}") from exc
        if exc.errno == errno.EACCES:
            raise ConfigError(f"{section}: no permission to listen on port {port} "
                              f"(ports below 1024 need privileges): set another "
                              f"{section}.port in the site file") from exc
        reason = exc.strerror or str(exc)
        raise ConfigError(f"{section}: cannot listen on {host}:{port}: {reason} "
                          f"(check {section}.host and {section}.port)") from exc
    except ConfigError as exc:
        if isinstance(exc.__cause__, RuntimeError):  # gRPC and pymodbus report binds so
            raise ConfigError(f"{section}: cannot listen on {host}:{port}, probably in use: "
                              f"{hint}") from exc
        raise ConfigError(f"{section}: {exc}") from exc
