"""Reading what an HTTP client sent: basic-auth credentials and a strict JSON body.

Shared by every listener (the variables API, the dashboard), so that credentials are compared
the same way everywhere and a body with NaN in it is refused the same way everywhere.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from aiohttp import web

from energytree import strictjson
from energytree.errors import RequestError

__all__ = ["credentials_match", "json_body"]


def credentials_match(header: str, username: bytes, password: bytes) -> bool:
    """Whether an ``Authorization`` header carries these basic-auth credentials."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, _, given = decoded.partition(b":")
    user_ok = hmac.compare_digest(user, username)
    password_ok = hmac.compare_digest(given, password)
    return user_ok & password_ok  # both compared, so timing does not tell which one failed


async def json_body(request: web.Request, expected: str) -> object:
    """The body as strict JSON; a RequestError that shows the ``expected`` shape if not."""
    raw = await request.read()  # aiohttp raises 413 beyond client_max_size
    try:
        return strictjson.loads(raw)
    except strictjson.JsonProblem as exc:
        raise RequestError(f"the body: {exc}; expected {expected}") from None
