"""One OCPP websocket client kept alive: connect options, reconnect backoff, failure causes.

Shared by ``upstream`` (the site as one charge point) and ``gateway`` (one charge point per
EVSE). A failed attempt is logged as one line naming what connects, the URL and the cause
(refused, DNS, TLS verify failed, proxy refused, HTTP 401, …). Usage::

    backoff = Backoff(1.0, 300.0)
    await keep_connected(lambda: session_once(), backoff, lambda: boots, "EVSE e1 → wss://…")
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import websockets
from ocpp.exceptions import OCPPError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from websockets.exceptions import (
    ConnectionClosed,
    InvalidMessage,
    InvalidProxyStatus,
    InvalidStatus,
    ProxyError,
)

from energytree.errors import ConfigError

if TYPE_CHECKING:
    from adapters.ocpp.versions import OcppVersion

__all__ = [
    "SESSION_ERRORS",
    "Backoff",
    "TlsFiles",
    "WebSocketUrl",
    "basic_auth",
    "boot",
    "describe_failure",
    "every",
    "keep_connected",
    "reason_fields",
    "ssl_context",
]

LOG = logging.getLogger(__name__)


def _websocket_url(url: str) -> str:
    if not url.startswith(("ws://", "wss://")):
        raise ValueError("must start with ws:// or wss://")
    return url


WebSocketUrl = Annotated[str, AfterValidator(_websocket_url)]


def reason_fields(version: OcppVersion, exc: Exception, code: str = "InvalidValue"
                  ) -> dict[str, Any]:
    """StatusInfo for a 2.0.1 response (an error's own ``reason_code`` wins over ``code``);
    1.6 has no field for a reason."""
    if not version.status_info:
        return {}
    code = getattr(exc, "reason_code", code)
    return {"status_info": {"reason_code": code, "additional_info": str(exc)[:512]}}

# what ends a session and leads to a reconnect: network, timeouts, the peer's protocol errors
SESSION_ERRORS = (OSError, TimeoutError, websockets.exceptions.WebSocketException, OCPPError)


class TlsFiles(BaseModel):
    """Files the user installs for wss://: CA bundle, client certificate and its key (PEM)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ca_file: Path | None = Field(None, description="CA bundle for the backend (else system CAs)")
    cert_file: Path | None = Field(None, description="client certificate (security profile 3)")
    key_file: Path | None = Field(None, description="key of the client certificate")

    @model_validator(mode="after")
    def _pair(self) -> TlsFiles:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        return self


def ssl_context(tls: TlsFiles) -> ssl.SSLContext:
    """A verifying client context; ConfigError names a missing or unreadable file."""
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
        if tls.cert_file is not None:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"TLS files {tls.model_dump(exclude_none=True)}: {exc}") from exc
    return context


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The Authorization header of OCPP security profiles 1 and 2 (HTTP basic auth)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _one(exc: BaseException) -> str | None:
    """The cause in words, or None if ``exc`` says nothing a user can act on."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup failed: {exc.strerror}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, InvalidProxyStatus):
        return f"proxy refused: HTTP {exc.response.status_code}"
    if isinstance(exc, ProxyError):
        return f"proxy error: {exc}"
    if isinstance(exc, InvalidStatus):
        code = exc.response.status_code
        hint = " (check user/password)" if code == 401 else ""
        return f"backend refused the websocket: HTTP {code}{hint}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OCPPError):
        return f"OCPP {type(exc).__name__}: {exc.description}"
    return None


def describe_failure(exc: BaseException, tls: bool = False) -> str:
    """The most specific cause in ``exc``'s chain, in a few words.

    With TLS 1.3 a backend checks the client certificate after the client's handshake; if it
    refuses it, the client only sees the connection end before the HTTP answer, so on wss://
    that is reported as a likely certificate problem.
    """
    chain = _chain(exc)
    for item in chain:
        text = _one(item)
        if text is not None:
            return text
    if tls and isinstance(exc, InvalidMessage) and any(isinstance(x, EOFError) for x in chain):
        return ("TLS: the backend closed the connection during the handshake; client "
                "certificate missing or not trusted by the backend?")
    if isinstance(exc, ConnectionClosed):
        return f"connection closed ({exc})"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Backoff:
    """Exponential reconnect delays between ``min_s`` and ``max_s`` [s]."""

    min_s: float
    max_s: float
    delay_s: float = field(init=False)

    def __post_init__(self) -> None:
        self.delay_s = self.min_s

    def reset(self) -> None:
        self.delay_s = self.min_s

    def next(self) -> float:
        delay, self.delay_s = self.delay_s, min(self.delay_s * 2, self.max_s)
        return delay


async def keep_connected(session: Callable[[], Awaitable[None]], backoff: Backoff,
                         progress: Callable[[], int], target: str, tls: bool = False,
                         running: Callable[[], bool] = lambda: True) -> None:
    """Run ``session`` again and again until cancelled or ``running()`` is false.

    One log line per failure. A session after which ``progress()`` grew (e.g. it booted)
    restarts the backoff. ``running`` ends the loop even where Python 3.11's task groups
    swallow a cancellation that meets a closing connection.
    """
    while running():
        before = progress()
        try:
            await session()
        except* SESSION_ERRORS as group:
            LOG.warning("%s: %s", target, describe_failure(group.exceptions[0], tls))
        except* Exception:  # a bug in one handler must not end the connection for good
            LOG.exception("%s: unexpected error; reconnecting", target)
        if progress() > before:
            backoff.reset()
        await asyncio.sleep(backoff.next())


async def boot(cp: Any, version: OcppVersion, vendor: str, model: str) -> float:
    """BootNotification until Accepted; return the heartbeat interval [s] it sets."""
    while True:
        result = await cp.call(version.boot_notification(vendor, model), suppress=False)
        interval = float(result.interval) if result.interval > 0 else 60.0
        if result.status == version.registration_status.accepted:
            return interval
        await asyncio.sleep(interval)  # Pending/Rejected: ask again after `interval`


async def every(period_s: float, action: Callable[[], Awaitable[None]]) -> None:
    """``action`` every ``period_s`` [s], the first time after one period.

    A cancellation that meets an answer inside the ``ocpp`` library's ``wait_for`` can be
    swallowed on Python 3.11; the task group that cancelled us would then wait for ever (a
    short meter interval makes that likely), so a pending cancellation ends the loop here.
    """
    task = asyncio.current_task()
    while True:
        await asyncio.sleep(period_s)
        await action()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
