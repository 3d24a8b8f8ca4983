"""``listening``: what a listener's bind failure becomes (one line naming section and port)."""

from __future__ import annotations

import errno

import pytest

from energytree.app.startup import listening
from energytree.errors import ConfigError


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        pytest.param(OSError(errno.EADDRINUSE, "Address already in use"),
                     "sunspec: port 1502 on 127.0.0.1 is already in use: stop the program that "
                     "uses port 1502 or set another sunspec.port in the site file", id="in-use"),
        pytest.param(OSError(errno.EACCES, "Permission denied"),
                     "sunspec: no permission to listen on port 1502 (ports below 1024 need "
                     "privileges): set another sunspec.port in the site file", id="no-permission"),
        pytest.param(OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"),
                     "sunspec: cannot listen on 127.0.0.1:1502: Cannot assign requested address "
                     "(check sunspec.host and sunspec.port)", id="not-our-address"),
        pytest.param(ConfigError("cannot load TLS certificate a.pem with key b.pem: missing"),
                     "sunspec: cannot load TLS certificate a.pem with key b.pem: missing",
                     id="other-config-error"),
    ],
)
def test_bind_failures_name_the_section_and_port(failure: Exception, message: str) -> None:
    with pytest.raises(ConfigError) as caught, listening("sunspec", "127.0.0.1", 1502):
        raise failure
    assert str(caught.value) == message
