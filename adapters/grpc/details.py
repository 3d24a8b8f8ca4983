"""Rich gRPC errors: every field problem as ``google.rpc.BadRequest`` in the status details.

A client library that reads ``grpc-status-details-bin`` (``grpc_status.rpc_status``) gets
one field violation per problem, so it can mark each bad field; the status message says the
same in words for people.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from energytree.errors import RequestError
from energytree.targets import FieldViolation

__all__ = ["DETAILS_KEY", "bad_request_metadata", "violations_from_metadata", "violations_of"]

DETAILS_KEY = "grpc-status-details-bin"
FIELD_PREFIX = re.compile(r"^(?P<field>[A-Za-z_][\w.\[\]]*): (?P<description>.+)$", re.S)


def violations_of(exc: RequestError) -> list[FieldViolation]:
    """The field problems an error carries, or one read from its message ("field: what")."""
    found = getattr(exc, "violations", None)
    if found:
        return list(found)
    match = FIELD_PREFIX.match(str(exc))
    if match:
        return [FieldViolation(match["field"], match["description"])]
    return [FieldViolation("", str(exc))]


def bad_request_metadata(exc: RequestError, message: str) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata with an INVALID_ARGUMENT ``google.rpc.Status`` and its BadRequest."""
    bad = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
        for v in violations_of(exc)])
    detail = any_pb2.Any()
    detail.Pack(bad)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message,
                               details=[detail])
    return ((DETAILS_KEY, status.SerializeToString()),)


def violations_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None
                             ) -> list[FieldViolation]:
    """The BadRequest field violations in a call's trailing metadata (client side)."""
    for key, value in metadata or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            bad = error_details_pb2.BadRequest()
            for detail in status.details:
                if detail.Unpack(bad):
                    return [FieldViolation(v.field, v.description)
                            for v in bad.field_violations]
    return []
