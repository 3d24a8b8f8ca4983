"""OCPP chargers as the energy manager sees them: pure translations both ways.

Charger id + connector (1.6) or EVSE id (2.0.1) ↔ EVSE uuid, OCPP status → ``EvseState``,
MeterValues → ``Powermeter``, when a new limit is worth a SetChargingProfile, and the
TxDefaultProfile for an ``EnforcedLimits`` within what the charger advertises. No sockets,
files or clocks: callers pass ``now``. Usage::

    uuid = evse_uuid(charger, 1)                    # from the config, else "<charger id>-1"
    grant = grant_for(limits, config.nominal_voltage_v)
    if needs_push(pushed, grant, now, config):
        profile = tx_default_profile(1, grant, rules, now, stack_level=rules.max_stack_level,
                                     failsafe_a=6.0, lease_s=900, voltage_v=230.0)
        await cp.call(set_profile_call(V16, profile), suppress=False)

**Lease instead of validTo.** OCPP has no validity lease: after ``validTo`` a charger falls
back to lower stack levels or, with none, to its hardware maximum, the opposite of safe. So
the profile never expires; its schedule drops to the failsafe current ``lease_s`` after it was
sent (a second period), and the CSMS re-sends it before then. A charger that loses us lands on
its failsafe current by itself. A charger that allows only one period keeps the last limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from adapters.ocpp.profiles import (
    ChargingProfile,
    ChargingSchedule,
    Kind,
    ProfileRules,
    Purpose,
    RateUnit,
    SchedulePeriod,
    utc_whole_s,
)
from adapters.ocpp.versions import CsmsWire, OcppVersion
from energytree.errors import ConfigError, RequestError
from energytree.types import (
    EnforcedLimits,
    EvseState,
    ExternalLimits,
    LimitsReq,
    PhaseValues,
    Powermeter,
    ScheduleReqEntry,
    format_timestamp,
    to_utc,
)

__all__ = [
    "PROFILE_ID_BASE",
    "ChargerConfig",
    "CsmsConfig",
    "Grant",
    "Pushed",
    "charger_rules",
    "connectors_in",
    "dump_pushed",
    "ended_state",
    "evse_state",
    "evse_uuid",
    "floor_01",
    "grant_for",
    "lease_end",
    "load_pushed",
    "needs_push",
    "offline_limits",
    "powermeter",
    "register_reading",
    "set_profile_call",
    "tx_default_profile",
]

PROFILE_ID_BASE = 7300  # our profile id is this + connector: each push replaces the last one
CLOCK_SKEW_S = 60  # the schedule starts this early, so a charger whose clock lags still applies it
IDENTITY = r"^[A-Za-z0-9*_=+|@.-]{1,48}$"  # OCPP identifierString without ':' (basic auth)


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
    host: str = "127.0.0.1"
    port: int = Field(9000, ge=0, le=65535, description="0 picks a free port")
    chargers: list[ChargerConfig] = Field(default_factory=list, description="the allow-list")
    heartbeat_interval_s: int = Field(300, ge=1, le=86_400, description="[s]")
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


# ---- EnforcedLimits → a charging profile -----------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What one EVSE may draw now: current per phase [A] (0.1 A steps) on ``phases`` phases."""

    current_a: float
    phases: int | None = None  # None: not said; OCPP assumes 3


@dataclass(frozen=True)
class Pushed:
    """A profile the charger accepted, and when it falls back to its failsafe current."""

    grant: Grant
    at: datetime
    lease_end: datetime | None  # None: the charger keeps the limit (one period only)
    stack_level: int

    def renew_at(self) -> datetime | None:
        """Re-send once less than a third of the lease remains."""
        if self.lease_end is None:
            return None
        return self.at + (self.lease_end - self.at) * 2 / 3


def dump_pushed(pushed: Mapping[str, Pushed]) -> dict[str, Any]:
    """The accepted limits by EVSE uuid as JSON data (see ``load_pushed``)."""
    return {uuid: {"current_a": p.grant.current_a, "phases": p.grant.phases,
                   "at": format_timestamp(p.at), "stack_level": p.stack_level,
                   "lease_end": None if p.lease_end is None else format_timestamp(p.lease_end)}
            for uuid, p in pushed.items()}


def load_pushed(data: object) -> dict[str, Pushed]:
    """``dump_pushed``'s data back; ConfigError if it is not."""
    try:
        assert isinstance(data, dict)
        return {uuid: Pushed(Grant(float(p["current_a"]), p["phases"]), to_utc(p["at"]),
                             None if p["lease_end"] is None else to_utc(p["lease_end"]),
                             int(p["stack_level"]))
                for uuid, p in data.items()}
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"unreadable charger state: {exc!r}") from exc


def floor_01(value: float) -> float:
    """``value`` rounded down to 0.1 (1.6: multipleOf 0.1), never above it."""
    return float(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_FLOOR))


def grant_for(limits: EnforcedLimits, voltage_v: float) -> Grant:
    """The current an EVSE may draw from its EnforcedLimits; export and "no limit" give 0 A.

    A watt cap becomes amperes over the granted phases (3 if not said), which can only lower it.
    """
    res = limits.limits_root_side
    if res is None:
        return Grant(0.0)
    phases = res.ac_max_phase_count or None
    amps = math.inf if res.ac_max_current_A is None else res.ac_max_current_A
    if res.total_power_W is not None:
        amps = min(amps, res.total_power_W / (voltage_v * (phases or 3)))
    if not math.isfinite(amps) or amps <= 0:
        return Grant(0.0, phases)
    return Grant(floor_01(amps), phases)


def needs_push(pushed: Pushed | None, grant: Grant, now: datetime, config: CsmsConfig) -> bool:
    """Send a profile for ``grant``? First time, pause/resume, phases, a change beyond the
    threshold (the larger of ``change_threshold_a`` and ``change_threshold_pct``), or renewal."""
    if pushed is None:
        return True
    renew = pushed.renew_at()
    if renew is not None and now >= renew:
        return True
    old = pushed.grant
    if old.phases != grant.phases or (old.current_a == 0) != (grant.current_a == 0):
        return True
    band = max(config.change_threshold_a, config.change_threshold_pct / 100 * old.current_a)
    return abs(grant.current_a - old.current_a) > band


def charger_rules(wire: CsmsWire, values: Mapping[str, str]) -> ProfileRules:
    """What the charger advertised (GetConfiguration / GetVariables); unknown → stack level 0,
    one period, amperes."""
    def read(name: str) -> str | None:
        return values.get(wire.settings[name])

    units = _rate_units(read("rate_units")) or frozenset({RateUnit.A})
    return ProfileRules(max_stack_level=_count(read("max_stack_level"), 0),
                        max_periods=max(_count(read("max_periods"), 1), 1),
                        allowed_units=units)


def _count(text: str | None, default: int) -> int:
    try:
        return max(int(text or ""), 0)
    except ValueError:
        return default


def _rate_units(text: str | None) -> frozenset[RateUnit]:
    names = {"Current": RateUnit.A, "A": RateUnit.A, "Power": RateUnit.W, "W": RateUnit.W}
    tokens = (t.strip() for t in (text or "").split(","))
    return frozenset(names[t] for t in tokens if t in names)


def tx_default_profile(connector: int, grant: Grant, rules: ProfileRules, now: datetime, *,
                       stack_level: int, failsafe_a: float, lease_s: float,
                       voltage_v: float) -> ChargingProfile:
    """The TxDefaultProfile for ``grant`` on one connector, in A if allowed, else W.

    Absolute from ``now`` (minus a clock-skew margin); with two periods allowed the second one
    drops to ``failsafe_a`` when the lease ends (see the module docstring).
    """
    unit = RateUnit.A if RateUnit.A in rules.allowed_units else RateUnit.W
    per_amp = 1.0 if unit is RateUnit.A else voltage_v * (grant.phases or 3)
    periods = [SchedulePeriod(start_period_s=0, limit=floor_01(grant.current_a * per_amp),
                              number_phases=grant.phases)]
    if rules.max_periods >= 2:
        periods.append(SchedulePeriod(start_period_s=CLOCK_SKEW_S + math.ceil(lease_s),
                                      limit=floor_01(failsafe_a * per_amp),
                                      number_phases=grant.phases))
    start = utc_whole_s(now) - timedelta(seconds=CLOCK_SKEW_S)
    schedule = ChargingSchedule(charging_rate_unit=unit, periods=tuple(periods),
                                start_schedule=start)
    return ChargingProfile(id=PROFILE_ID_BASE + connector, connector_id=connector,
                           stack_level=stack_level, purpose=Purpose.tx_default,
                           kind=Kind.absolute, schedule=schedule)


def lease_end(profile: ChargingProfile) -> datetime | None:
    """When ``profile`` drops to its failsafe period; None if it has only one period."""
    schedule = profile.schedule
    if len(schedule.periods) < 2 or schedule.start_schedule is None:
        return None
    return schedule.start_schedule + timedelta(seconds=schedule.periods[-1].start_period_s)


def set_profile_call(version: OcppVersion, profile: ChargingProfile) -> Any:
    """The SetChargingProfile request for ``profile`` in ``version``'s wire form."""
    s = profile.schedule
    schedule: Any = {
        "charging_rate_unit": s.charging_rate_unit.value,
        "charging_schedule_period": [_wire_period(p) for p in s.periods],
    }
    if s.start_schedule is not None:
        schedule["start_schedule"] = format_timestamp(s.start_schedule)
    if version.schedules_are_list:
        schedule = [{"id": profile.id, **schedule}]
    wire: dict[str, Any] = {
        version.profile_id_field: profile.id,
        "stack_level": profile.stack_level,
        "charging_profile_purpose": version.purpose_to_wire(profile.purpose.value),
        "charging_profile_kind": profile.kind.value,
        "charging_schedule": schedule,
    }
    if profile.transaction_id is not None:
        wire["transaction_id"] = version.transaction_id_type(profile.transaction_id)
    return version.call.SetChargingProfile(
        **{version.connector_field: profile.connector_id, version.profile_field: wire}
    )


def _wire_period(p: SchedulePeriod) -> dict[str, Any]:
    period: dict[str, Any] = {"start_period": p.start_period_s, "limit": floor_01(p.limit)}
    if p.number_phases is not None:
        period["number_phases"] = p.number_phases
    return period


# ---- offline chargers --------------------------------------------------------------------------


def offline_limits(pushed: Pushed | None, failsafe_a: float, now: datetime
                   ) -> ExternalLimits | None:
    """What an offline charger's EVSE may be drawing, pinned (minimum = maximum) over time.

    Its last accepted limit until the lease ends, then the failsafe current. None if nothing was
    ever accepted: the charger's limit is unknown, so the EVSE keeps its own maximum.
    """
    if pushed is None:
        return None
    entries = [(now, pushed.grant.current_a)]
    if pushed.lease_end is not None:
        if pushed.lease_end <= now:
            entries = []
        entries.append((max(pushed.lease_end, now), failsafe_a))
    return ExternalLimits(schedule_import=[_pinned(t, amps) for t, amps in entries])


def _pinned(at: datetime, amps: float) -> ScheduleReqEntry:
    pin = LimitsReq(ac_max_current_A=amps, ac_min_current_A=amps)
    return ScheduleReqEntry(timestamp=at, limits_to_root=pin, limits_to_leaves=LimitsReq())

