"""OCPP chargers as the energy manager sees them: configuration and pure translations.

The allow-list and its credentials, charger id + connector (1.6) or EVSE id (2.0.1) ↔ EVSE
uuid, OCPP status → ``EvseState`` and MeterValues → ``Powermeter``. What the manager grants
goes the other way in ``charger_limits``. No sockets, files or clocks. Usage::

    uuid = evse_uuid(charger, 1)                    # from the config, else "<charger id>-1"
    state = evse_state("SuspendedEVSE", in_transaction=True)     # EvseState.PausedEVSE
    reading = powermeter(CSMS16, meter_value, meter_id=f"{charger.id}/1")
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader
from websockets.headers import parse_authorization_basic

from adapters.ocpp.versions import CsmsWire
from energytree.errors import RequestError
from energytree.types import EvseState, PhaseValues, Powermeter, to_utc

__all__ = [
    "ChargerConfig", "CsmsConfig", "charger_id", "connectors_in", "credentials_ok",
    "ended_state", "evse_state", "evse_uuid", "offline_source", "powermeter",
    "register_reading",
]

IDENTITY = r"^[A-Za-z0-9*_=+|@.-]{1,48}$"  # OCPP identifierString without ':' (basic auth)
SOURCE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,56}$")  # fits energytree.leases' pattern


class ChargerConfig(BaseModel):
    """One charger on the allow-list; its connectors (1.6) or EVSEs (2.0.1) by id."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(pattern=IDENTITY, description="charge point identity (last URL segment)")
    password: SecretStr | None = Field(None, description="basic auth (security profile 1)")
    connectors: dict[int, str] = Field(
        default_factory=dict, description='connector/EVSE id → EVSE uuid; else "<id>-<n>"'
    )
    failsafe_current_a: float | None = Field(None, ge=0, le=80, description="[A] per phase")

    @field_validator("connectors")
    @classmethod
    def _valid_connectors(cls, connectors: dict[int, str]) -> dict[int, str]:
        if any(c < 1 for c in connectors):
            raise ValueError("connector/EVSE ids start at 1 (0 is the whole charger)")
        if len(set(connectors.values())) != len(connectors):
            raise ValueError("two connectors map to the same EVSE uuid")
        return connectors


class CsmsConfig(BaseModel):
    """The CSMS towards the site's chargers: one port for OCPP 1.6J and 2.0.1."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(9000, ge=0, le=65535, description="0 picks a free port")
    chargers: list[ChargerConfig] = Field(default_factory=list, description="the allow-list")
    heartbeat_interval_s: int = Field(300, ge=1, le=86_400,
                                      description="[s] told to chargers at boot")
    lease_heartbeats: int = Field(
        3, ge=1, le=100, description="a pushed limit holds this many heartbeat intervals"
    )
    change_threshold_a: float = Field(0.5, ge=0, description="[A] smaller changes are not sent")
    change_threshold_pct: float = Field(5.0, ge=0, le=100, description="[%] of the last limit")
    failsafe_current_a: float = Field(6.0, ge=0, le=80, description="[A] per phase, default")
    nominal_voltage_v: float = Field(230.0, gt=0, le=1000, description="A ↔ W [V]")
    response_timeout_s: float = Field(30.0, gt=0, le=300, description="[s] per OCPP call")
    retry_after_s: float = Field(60.0, gt=0, description="[s] after a refused profile")
    state_path: Path | None = Field(
        None, description="JSON file of the limits chargers accepted, for offline pins"
    )

    @field_validator("chargers")
    @classmethod
    def _unique_ids(cls, chargers: list[ChargerConfig]) -> list[ChargerConfig]:
        ids = [c.id for c in chargers]
        if len(set(ids)) != len(ids):
            raise ValueError("charger ids must be unique")
        return chargers

    @property
    def lease_s(self) -> float:
        """How long a charger keeps a pushed limit without hearing from us [s]."""
        return float(self.heartbeat_interval_s * self.lease_heartbeats)

    def failsafe_a(self, charger: ChargerConfig) -> float:
        if charger.failsafe_current_a is not None:
            return charger.failsafe_current_a
        return self.failsafe_current_a


# ---- charger + connector ↔ EVSE uuid -------------------------------------------------------


def evse_uuid(charger: ChargerConfig, connector: int) -> str:
    """The EVSE uuid of a connector (1.6) / EVSE (2.0.1): configured, else ``<id>-<n>``."""
    return charger.connectors.get(connector) or f"{charger.id}-{connector}"


def connectors_in(charger: ChargerConfig, uuids: Iterable[str]) -> list[int]:
    """The charger's connectors: the configured ones and the derived ones ``uuids`` contain."""
    found = set(charger.connectors)
    prefix = f"{charger.id}-"
    for uuid in uuids:
        tail = uuid[len(prefix):] if uuid.startswith(prefix) else ""
        if tail.isdecimal() and int(tail) >= 1 and evse_uuid(charger, int(tail)) == uuid:
            found.add(int(tail))
    return sorted(found)


# ---- the handshake -------------------------------------------------------------------------


def charger_id(path: str) -> str:
    """The charger id of a request path: its last segment, percent-decoded."""
    return unquote(path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])


def offline_source(uuid: str) -> str:
    """The external-limit source that pins an offline EVSE (a valid lease name)."""
    if SOURCE_NAME.match(uuid):
        return f"offline:{uuid}"
    return "offline:" + hashlib.sha256(uuid.encode()).hexdigest()[:16]


def credentials_ok(charger: ChargerConfig | None, headers: Headers) -> bool:
    """HTTP basic auth as the charger (user = its id); evaluated in constant time."""
    if charger is not None and charger.password is None:
        return True
    try:
        user, password = parse_authorization_basic(headers.get("Authorization", ""))
    except InvalidHeader:
        user, password = "", ""
    expected_user = charger.id if charger is not None else "\x00"
    secret = charger.password.get_secret_value() if charger and charger.password else "\x00"
    same_user = hmac.compare_digest(user.encode(), expected_user.encode())
    same_password = hmac.compare_digest(password.encode(), secret.encode())
    return charger is not None and same_user & same_password


# ---- status → EvseState ----------------------------------------------------------------------

# 1.6 ChargePointStatus, 2.0.1 ConnectorStatusEnumType and ChargingStateEnumType share names
# without clashes, so one table serves both versions.
STATUS_STATES: Mapping[str, EvseState] = {
    "Available": EvseState.Unplugged,
    "Preparing": EvseState.WaitForAuth,
    "Charging": EvseState.Charging,
    "SuspendedEVSE": EvseState.PausedEVSE,  # also our own 0 A: it still wants power
    "SuspendedEV": EvseState.PausedEV,
    "Finishing": EvseState.Finished,
    "Reserved": EvseState.Unplugged,
    "Unavailable": EvseState.Disabled,
    "Faulted": EvseState.Disabled,
    "Occupied": EvseState.WaitForAuth,  # 2.0.1: plugged; TransactionEvent tells more
    "EVConnected": EvseState.PrepareCharging,  # 2.0.1 chargingState
    "Idle": EvseState.Unplugged,  # 2.0.1 chargingState: transaction without an EV
}
UNPLUGGED_REASONS = {"EVDisconnected", "EVDeparted", "EVCommunicationLost"}


def evse_state(status: str, in_transaction: bool) -> EvseState | None:
    """The EvseState an OCPP status means; None when it adds nothing (2.0.1 Occupied in a tx)."""
    try:
        state = STATUS_STATES[status]
    except KeyError:
        raise RequestError(f"unknown status {status!r}") from None
    if in_transaction and status == "Occupied":
        return None  # the transaction's chargingState is more precise
    if in_transaction and state is EvseState.WaitForAuth:
        return EvseState.PrepareCharging  # 1.6 Preparing after StartTransaction
    return state


def ended_state(*reasons: str | None) -> EvseState:
    """The state after a transaction ended for these reasons (stop and trigger reason)."""
    unplugged = any(r in UNPLUGGED_REASONS for r in reasons)
    return EvseState.Unplugged if unplugged else EvseState.Finished


# ---- MeterValues → Powermeter ----------------------------------------------------------------

FIELDS = {  # measurand -> Powermeter field, its units and their scale
    "Energy.Active.Import.Register": ("energy_Wh_import", {"Wh": 1.0, "kWh": 1000.0}),
    "Power.Active.Import": ("power_W", {"W": 1.0, "kW": 1000.0}),
    "Current.Import": ("current_A", {"A": 1.0}),
    "Voltage": ("voltage_V", {"V": 1.0}),
}
DEFAULT_MEASURAND = "Energy.Active.Import.Register"  # both versions' default
PHASES = {None: "total", "L1": "L1", "L2": "L2", "L3": "L3",
          "L1-N": "L1", "L2-N": "L2", "L3-N": "L3"}


def powermeter(
    wire: CsmsWire, meter_values: Sequence[Mapping[str, Any]], meter_id: str
) -> Powermeter | None:
    """The newest MeterValue of a list as a Powermeter [Wh, W, A, V]; None if nothing usable.

    Unknown measurands, units, phases and signed data are skipped; a value that is not a finite
    number raises RequestError (the message is rejected and changes nothing).
    """
    if not meter_values:
        return None
    newest = max(meter_values, key=lambda m: _time(m["timestamp"]))
    fields: dict[str, dict[str, float]] = {}
    for sampled in newest["sampled_value"]:
        found = _sample(wire, sampled)
        if found is not None:
            field, phase, value = found
            fields.setdefault(field, {})[phase] = value
    power = fields.get("power_W")
    if power is not None and "total" not in power:
        power["total"] = sum(power.values())
    if not fields:
        return None
    values = {k: PhaseValues(**v) for k, v in fields.items()}
    return Powermeter(timestamp=_time(newest["timestamp"]), meter_id=meter_id, **values)


def register_reading(wh: float, timestamp: str, meter_id: str) -> Powermeter:
    """The energy register of StartTransaction (meterStart) or StopTransaction (meterStop)."""
    return Powermeter(timestamp=_time(timestamp), meter_id=meter_id,
                      energy_Wh_import=PhaseValues(total=float(wh)))


def _sample(wire: CsmsWire, sampled: Mapping[str, Any]) -> tuple[str, str, float] | None:
    if sampled.get("format") == "SignedData":
        return None
    known = FIELDS.get(sampled.get("measurand") or DEFAULT_MEASURAND)
    phase = PHASES.get(sampled.get("phase"))
    if known is None or phase is None:
        return None
    field, scales = known
    raw, unit, exponent = wire.sample_value(sampled)
    scale = scales.get(unit or next(iter(scales)))
    if scale is None:
        return None
    try:
        value = float(raw) * scale * 10.0**exponent
    except (TypeError, ValueError, OverflowError):
        raise RequestError(f"sampledValue {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise RequestError(f"sampledValue {raw!r} is not a finite number")
    return field, phase, value


def _time(text: str) -> datetime:
    try:
        return to_utc(text)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
