"""Session messages of both OCPP versions pass the ``ocpp`` library's JSON schemas."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.messages import Call, validate_payload

from adapters.ocpp.evsewire import WIRE, EvseWire
from energytree.sessions import MeterReading, Session
from energytree.types import EvseState

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SESSION = Session(id=1, uid="6f1c9d1e-0b7a-4f43-9d2e-3a5c1f0e2b11", evse="e1", id_tag="TAG1",
                  start=T0, meter_start_wh=1000.4, meter_last_wh=4680.6, last_at=T0,
                  stop=T0 + timedelta(hours=1), stop_reason="EVDisconnected")


async def valid_call(wire: EvseWire, call: Any) -> None:
    """Validate as ``ChargePoint.call`` does before sending."""
    body = remove_nones(snake_to_camel_case(serialize_as_dict(call)))
    await validate_payload(Call("1", type(call).__name__, body), wire.version.name)


async def valid(wire: EvseWire, action: str, payload: dict[str, Any]) -> None:
    json.dumps(payload)  # the outbox stores it as JSON
    if action in wire.needs_transaction_id:
        payload = payload | {"transaction_id": 101}
    await valid_call(wire, getattr(wire.version.call, action)(**payload))


@pytest.mark.parametrize("name", ["1.6", "2.0.1"])
@pytest.mark.parametrize("tag", ["TAG1", None], ids=["authorised", "free"])
async def test_session_messages_are_valid(name: str, tag: str | None) -> None:
    wire = WIRE[name]
    session = replace(SESSION, id_tag=tag)
    reading = MeterReading("e1", 2840.0, 11040.0, T0 + timedelta(minutes=10))
    for action, payload in (wire.started(session, tag or "energytree", 0),
                            wire.updated(session, reading, 1),
                            wire.ended(session, tag or "energytree", 2),
                            wire.authorize("TAG1")):
        await valid(wire, action, payload)


@pytest.mark.parametrize("name", ["1.6", "2.0.1"])
async def test_every_state_has_a_valid_status(name: str) -> None:
    wire = WIRE[name]
    for state in EvseState:
        await valid_call(
            wire, wire.status_notification(1, wire.status_of(state), "2026-11-23T10:00:00Z"))
    assert wire.status_of(None) == "Available"
