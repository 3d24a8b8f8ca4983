"""What one EVSE tells the supplier's backend, as data per OCPP version: pure, no sockets.

Each EVSE is its own charge point with one connector (1.6 connector 1, 2.0.1 EVSE 1 /
connector 1). Session messages are (action, snake_case payload) pairs the outbox stores:
1.6 StartTransaction / MeterValues / StopTransaction, whose transactionId the gateway fills in
at send time (``needs_transaction_id``); 2.0.1 TransactionEvent Started / Updated / Ended with
our session uid as transactionId and a seqNo. Usage::

    wire = WIRE[config.version]
    action, payload = wire.started(session, "TAG1", seq_no=0)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from adapters.ocpp.versions import V16, V201, OcppVersion, Sample, meter_value
from energytree.sessions import MeterReading, Session
from energytree.types import EvseState, format_timestamp

__all__ = ["CONNECTOR", "WIRE", "EvseWire", "iso", "samples"]

CONNECTOR = 1
Call = tuple[str, dict[str, Any]]


def iso(t: datetime) -> str:
    """RFC 3339 UTC with whole seconds and a Z, as OCPP backends expect."""
    return format_timestamp(t, whole_seconds=True)


def samples(energy_wh: float, power_w: float | None = None) -> list[Sample]:
    """The energy register [Wh] and, if known, the active power [W]."""
    out = [Sample(energy_wh, "Energy.Active.Import.Register", "Wh")]
    if power_w is not None:
        out.append(Sample(max(0.0, power_w), "Power.Active.Import", "W"))
    return out


@dataclass(frozen=True)
class EvseWire:
    """The session messages of one OCPP version (see the module docstring)."""

    version: OcppVersion
    status: Mapping[EvseState, str]  # EvseState -> ChargePointStatus / ConnectorStatus
    needs_transaction_id: frozenset[str]  # actions whose transaction_id is the backend's
    started: Callable[[Session, str, int], Call]  # (session, id tag, seq_no)
    updated: Callable[[Session, MeterReading, int], Call]
    ended: Callable[[Session, str, int], Call]
    authorize: Callable[[str], Call]
    status_notification: Callable[[int, str, str], Any]  # (connector, status, ISO time)

    def status_of(self, state: EvseState | None) -> str:
        return "Available" if state is None else self.status[state]


# ---- OCPP 1.6 ------------------------------------------------------------------------------

def _started_16(s: Session, id_tag: str, seq_no: int) -> Call:
    return "StartTransaction", {"connector_id": CONNECTOR, "id_tag": id_tag,
                                "meter_start": round(s.meter_start_wh), "timestamp": iso(s.start)}


def _updated_16(s: Session, r: MeterReading, seq_no: int) -> Call:
    value = meter_value(V16, iso(r.at), samples(r.energy_wh, r.power_w), "Sample.Periodic")
    return "MeterValues", {"connector_id": CONNECTOR, "meter_value": [value]}


def _ended_16(s: Session, id_tag: str, seq_no: int) -> Call:
    assert s.stop is not None
    end = meter_value(V16, iso(s.stop), samples(s.meter_last_wh), "Transaction.End")
    return "StopTransaction", {"meter_stop": round(s.meter_last_wh), "timestamp": iso(s.stop),
                               "reason": s.stop_reason or "Other", "id_tag": id_tag,
                               "transaction_data": [end]}


def _status_16(connector: int, status: str, at: str) -> Any:
    return V16.call.StatusNotification(connector_id=connector, error_code="NoError",
                                       status=status, timestamp=at)


STATUS_16 = MappingProxyType({
    EvseState.Unplugged: "Available", EvseState.WaitForAuth: "Preparing",
    EvseState.PrepareCharging: "Preparing", EvseState.WaitForEnergy: "SuspendedEVSE",
    EvseState.PausedEVSE: "SuspendedEVSE", EvseState.PausedEV: "SuspendedEV",
    EvseState.Charging: "Charging", EvseState.Finished: "Finishing",
    EvseState.Disabled: "Unavailable",
})

# ---- OCPP 2.0.1 ----------------------------------------------------------------------------

NO_AUTHORIZATION = MappingProxyType({"id_token": "", "type": "NoAuthorization"})
_TRIGGER_ENDED = {"EVDisconnected": "EVDeparted", "Remote": "RemoteStop", "Local": "StopAuthorized"}


def _event_201(kind: str, s: Session, at: datetime, trigger: str, seq_no: int,
               values: list[dict[str, Any]], info: Mapping[str, Any] = MappingProxyType({})
               ) -> dict[str, Any]:
    return {"event_type": kind, "timestamp": iso(at), "trigger_reason": trigger,
            "seq_no": seq_no, "transaction_info": {"transaction_id": s.uid, **info},
            "evse": {"id": CONNECTOR, "connector_id": CONNECTOR}, "meter_value": values}


def _started_201(s: Session, id_tag: str, seq_no: int) -> Call:
    begin = meter_value(V201, iso(s.start), samples(s.meter_start_wh), "Transaction.Begin")
    payload = _event_201("Started", s, s.start, "Authorized" if s.id_tag else "CablePluggedIn",
                         seq_no, [begin])
    # nobody authorised (free charging): 2.0.1 says so instead of inventing a token
    token = {"id_token": id_tag, "type": "Local"} if s.id_tag else NO_AUTHORIZATION
    payload["id_token"] = dict(token)
    return "TransactionEvent", payload


def _updated_201(s: Session, r: MeterReading, seq_no: int) -> Call:
    value = meter_value(V201, iso(r.at), samples(r.energy_wh, r.power_w), "Sample.Periodic")
    return "TransactionEvent", _event_201("Updated", s, r.at, "MeterValuePeriodic", seq_no,
                                          [value])


def _ended_201(s: Session, id_tag: str, seq_no: int) -> Call:
    assert s.stop is not None
    end = meter_value(V201, iso(s.stop), samples(s.meter_last_wh), "Transaction.End")
    reason = s.stop_reason or "Other"
    trigger = _TRIGGER_ENDED.get(reason, "AbnormalCondition")
    return "TransactionEvent", _event_201("Ended", s, s.stop, trigger, seq_no, [end],
                                          {"stopped_reason": reason})


def _status_201(connector: int, status: str, at: str) -> Any:
    return V201.call.StatusNotification(timestamp=at, connector_status=status,
                                        evse_id=connector, connector_id=1)


STATUS_201 = MappingProxyType(
    {state: "Occupied" for state in EvseState}
    | {EvseState.Unplugged: "Available", EvseState.Disabled: "Unavailable"})

WIRE: Mapping[str, EvseWire] = MappingProxyType({
    "1.6": EvseWire(
        version=V16, status=STATUS_16,
        needs_transaction_id=frozenset({"MeterValues", "StopTransaction"}),
        started=_started_16, updated=_updated_16, ended=_ended_16,
        authorize=lambda tag: ("Authorize", {"id_tag": tag}),
        status_notification=_status_16),
    "2.0.1": EvseWire(
        version=V201, status=STATUS_201, needs_transaction_id=frozenset(),
        started=_started_201, updated=_updated_201, ended=_ended_201,
        authorize=lambda tag: ("Authorize", {"id_token": {"id_token": tag, "type": "Local"}}),
        status_notification=_status_201),
})
