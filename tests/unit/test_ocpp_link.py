"""Connection failures in words a user can act on, and the reconnect backoff."""

from __future__ import annotations

import socket
import ssl

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidMessage, InvalidProxyStatus, InvalidStatus
from websockets.http11 import Response

from adapters.ocpp.link import Backoff, describe_failure


def _caused(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


def _verify_failed() -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "unable to get local issuer certificate"
    return exc


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        pytest.param(ConnectionRefusedError(111, "refused"), "connection refused", id="refused"),
        pytest.param(socket.gaierror(-2, "Name or service not known"),
                     "DNS lookup failed: Name or service not known", id="dns"),
        pytest.param(_verify_failed(),
                     "TLS verify failed: unable to get local issuer certificate", id="tls-verify"),
        pytest.param(InvalidProxyStatus(Response(407, "Proxy Auth", Headers())),
                     "proxy refused: HTTP 407", id="proxy-status"),
        pytest.param(InvalidStatus(Response(401, "Unauthorized", Headers())),
                     "backend refused the websocket: HTTP 401 (check user/password)", id="401"),
        pytest.param(_caused(InvalidMessage("bad"), ConnectionRefusedError()),
                     "connection refused", id="cause-chain"),
        pytest.param(TimeoutError(), "timed out", id="timeout"),
    ],
)
def test_describe_failure(exc: BaseException, text: str) -> None:
    assert describe_failure(exc) == text


def test_an_end_during_the_wss_handshake_points_at_the_client_certificate() -> None:
    exc = _caused(InvalidMessage("did not receive a valid HTTP response"), EOFError())
    assert "client certificate" in describe_failure(exc, tls=True)
    assert "client certificate" not in describe_failure(exc, tls=False)


def test_backoff_doubles_up_to_the_maximum_and_resets() -> None:
    backoff = Backoff(1.0, 5.0)
    assert [backoff.next() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next() == 1.0
