"""Charging profiles of OCPP 1.6 and 2.0.1 as one version-neutral model, and their store.

Pure: no sockets, files or clocks (callers pass ``now`` and write the JSON themselves). The
composite schedule built from a store lives in ``composite.py``. Usage::

    store = ProfileStore(ProfileRules(max_stack_level=8))
    store.install(parse_profile(V16, connector_id, cs_charging_profiles))   # RequestError if bad
    store.clear(ClearCriteria(purpose=Purpose.tx_default))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from itertools import pairwise
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from energytree.errors import ConfigError, RequestError

if TYPE_CHECKING:
    from adapters.ocpp.versions import OcppVersion

__all__ = [
    "ChargingProfile",
    "ChargingSchedule",
    "ClearCriteria",
    "DuplicateProfileError",
    "Kind",
    "ProfileRules",
    "ProfileStore",
    "Purpose",
    "RateUnit",
    "Recurrency",
    "SchedulePeriod",
    "parse_clear",
    "parse_profile",
    "parse_set_request",
    "utc_whole_s",
    "validate_profile",
]


class Purpose(StrEnum):
    """Why a profile exists; OCPP 1.6 ``ChargePointMaxProfile`` is ``station_max``."""

    station_max = "ChargingStationMaxProfile"
    tx_default = "TxDefaultProfile"
    tx = "TxProfile"
    external = "ChargingStationExternalConstraints"  # 2.0.1: set by a local EMS or DSO box


class Kind(StrEnum):
    """Where the schedule starts: a fixed time, a repeating time, or the transaction start."""

    absolute = "Absolute"
    recurring = "Recurring"
    relative = "Relative"


class Recurrency(StrEnum):
    """Repeat period of a Recurring profile, counted from its startSchedule."""

    daily = "Daily"
    weekly = "Weekly"


class RateUnit(StrEnum):
    """Unit of schedule limits: A per phase, or W in total."""

    A = "A"
    W = "W"


def utc_whole_s(value: datetime) -> datetime:
    """``value`` in UTC without sub-seconds, so every schedule offset is a whole second.

    OCPP times are UTC, so a time without offset is read as UTC.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


UtcTime = Annotated[datetime, AfterValidator(utc_whole_s)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SchedulePeriod(_Model):
    """ChargingSchedulePeriod: one limit from ``start_period_s`` until the next period."""

    start_period_s: int = Field(ge=0, description="offset from the schedule start [s]")
    limit: float = Field(ge=0, allow_inf_nan=False, description="[A] per phase or [W]")
    number_phases: int | None = Field(None, ge=1, le=3, description="None means 3 (K01.FR.49)")


class ChargingSchedule(_Model):
    """ChargingSchedule; 2.0.1 sends a list of them and we keep the first (see parse)."""

    charging_rate_unit: RateUnit
    periods: tuple[SchedulePeriod, ...] = Field(min_length=1)
    start_schedule: UtcTime | None = None
    duration_s: int | None = Field(None, ge=0, description="None: the last period never ends")
    min_charging_rate: float | None = Field(None, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _periods_ordered(self) -> ChargingSchedule:
        if self.periods[0].start_period_s != 0:
            raise ValueError("the first period must start at 0 (K01.FR.31)")
        starts = [p.start_period_s for p in self.periods]
        if any(b <= a for a, b in pairwise(starts)):
            raise ValueError("period start times must be strictly increasing (K01.FR.35)")
        return self


class ChargingProfile(_Model):
    """ChargingProfile of either version, with the connector (1.6) or EVSE (2.0.1) it is on."""

    id: int
    connector_id: int = Field(ge=0, description="connector or EVSE id; 0 = whole station")
    stack_level: int = Field(ge=0)
    purpose: Purpose
    kind: Kind
    recurrency_kind: Recurrency | None = None
    valid_from: UtcTime | None = None
    valid_to: UtcTime | None = None
    transaction_id: str | None = None
    schedule: ChargingSchedule

    @model_validator(mode="after")
    def _consistent(self) -> ChargingProfile:
        _check_kind(self)
        _check_purpose(self)
        if self.valid_from and self.valid_to and self.valid_from >= self.valid_to:
            raise ValueError("validFrom must be before validTo")
        return self


def _check_kind(p: ChargingProfile) -> None:
    has_start = p.schedule.start_schedule is not None
    if p.kind is not Kind.relative and not has_start:
        raise ValueError("Absolute and Recurring profiles need a startSchedule (K01.FR.40)")
    if p.kind is Kind.relative and has_start:
        raise ValueError("Relative profiles must not have a startSchedule (K01.FR.41)")
    if (p.kind is Kind.recurring) != (p.recurrency_kind is not None):
        raise ValueError("recurrencyKind is required for, and only allowed with, Recurring")


def _check_purpose(p: ChargingProfile) -> None:
    # 1.6 ChargingProfilePurposeType: "ChargePointMaxProfile can only be set at Charge Point
    # ConnectorId 0"; "TxProfile SHALL only be set at Charge Point ConnectorId >0".
    if p.purpose is Purpose.station_max and p.connector_id != 0:
        raise ValueError("ChargingStationMaxProfile is only allowed on connector/EVSE 0")
    if p.purpose is Purpose.station_max and p.kind is Kind.relative:
        raise ValueError("ChargingStationMaxProfile cannot be Relative: there is no transaction")
    if p.purpose is Purpose.tx and p.connector_id == 0:
        raise ValueError("TxProfile is only allowed on a connector/EVSE > 0")
    if p.purpose is not Purpose.tx and p.transaction_id is not None:
        raise ValueError("transactionId is only allowed with TxProfile")


class ProfileRules(_Model):
    """What this station accepts; the names of the OCPP configuration keys are in brackets."""

    max_stack_level: int = Field(8, ge=0, description="[ChargeProfileMaxStackLevel]")
    max_periods: int = Field(24, ge=1, description="[ChargingScheduleMaxPeriods]")
    allowed_units: frozenset[RateUnit] = Field(
        frozenset({RateUnit.A, RateUnit.W}),
        min_length=1,
        description="[ChargingScheduleAllowedChargingRateUnit]",
    )
    max_profiles: int = Field(16, ge=1, description="[MaxChargingProfilesInstalled]")
    supply_phases: int = Field(3, ge=1, le=3, description="phases of the supply (K01.FR.45)")


def validate_profile(
    profile: ChargingProfile, rules: ProfileRules, active_transaction_id: str | None = None
) -> ChargingProfile:
    """``profile`` checked against ``rules``; a TxProfile without id gets the active one.

    ``active_transaction_id`` is the transaction running on ``profile.connector_id``. OCPP 1.6
    lets a TxProfile omit transactionId ("applies to the current transaction"); with no active
    transaction, or another one, the profile is rejected (1.6 §3.13.1, 2.0.1 K01).
    """
    schedule = profile.schedule
    if profile.stack_level > rules.max_stack_level:
        raise RequestError(f"stackLevel {profile.stack_level} > {rules.max_stack_level}")
    if len(schedule.periods) > rules.max_periods:
        raise RequestError(f"{len(schedule.periods)} periods > {rules.max_periods} allowed")
    if schedule.charging_rate_unit not in rules.allowed_units:
        raise RequestError(f"chargingRateUnit {schedule.charging_rate_unit} not supported")
    if any((p.number_phases or 0) > rules.supply_phases for p in schedule.periods):
        raise RequestError(f"numberPhases above the {rules.supply_phases} supply phases")
    if profile.purpose is not Purpose.tx:
        return profile
    if active_transaction_id is None:
        raise RequestError(f"TxProfile: no active transaction on {profile.connector_id}")
    if profile.transaction_id is None:
        return profile.model_copy(update={"transaction_id": active_transaction_id})
    if profile.transaction_id != active_transaction_id:
        raise RequestError(f"TxProfile: transaction {profile.transaction_id} is not active")
    return profile


@contextmanager
def _as_request_error(what: str) -> Iterator[None]:
    """Turn a malformed payload (pydantic or dict access errors) into our RequestError."""
    try:
        yield
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'profile'}: {e['msg']}" for e in exc.errors()
        )
        raise RequestError(f"invalid {what}: {reasons}") from exc
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise RequestError(f"invalid {what}: missing or malformed {exc}") from exc


def parse_set_request(version: OcppVersion, payload: Mapping[str, Any],
                      connectors: Sequence[int]) -> ChargingProfile:
    """The profile of a SetChargingProfile a backend sent us (as a charge point).

    The connector must be one of ``connectors``, and ExternalConstraints are ours to set,
    not the backend's (K01.FR.22).
    """
    connector = payload[version.connector_field]
    if connector not in connectors:
        raise RequestError(f"connector {connector} does not exist; there are {list(connectors)}")
    profile = parse_profile(version, connector, payload[version.profile_field])
    if profile.purpose is Purpose.external:
        raise RequestError("the CSMS may not set ExternalConstraints (K01.FR.22)")
    return profile


def parse_profile(
    version: OcppVersion, connector_id: int, wire: Mapping[str, Any]
) -> ChargingProfile:
    """The profile of a SetChargingProfile request as the ``ocpp`` library hands it over.

    ``wire`` has snake_case keys; 1.6 numbers arrive as ``Decimal`` (pydantic makes floats). Of the
    1..3 schedules of 2.0.1 only the first is used: the others are ISO 15118 alternatives for
    the EV to choose from. 1.6 has no rule against a startSchedule on a Relative profile, so
    there it is ignored instead of rejected (K01.FR.41 is 2.0.1).
    """
    with _as_request_error("charging profile"):
        schedule = wire["charging_schedule"]
        if version.schedules_are_list:
            schedule = schedule[0]
        kind = wire["charging_profile_kind"]
        start = schedule.get("start_schedule")
        if kind == Kind.relative and not version.schedules_are_list:
            start = None
        transaction_id = wire.get("transaction_id")
        return ChargingProfile.model_validate(
            {
                "id": wire[version.profile_id_field],
                "connector_id": connector_id,
                "stack_level": wire["stack_level"],
                "purpose": version.purposes[wire["charging_profile_purpose"]],
                "kind": kind,
                "recurrency_kind": wire.get("recurrency_kind"),
                "valid_from": wire.get("valid_from"),
                "valid_to": wire.get("valid_to"),
                "transaction_id": None if transaction_id is None else str(transaction_id),
                "schedule": _parse_schedule(schedule, start),
            }
        )


def _parse_schedule(wire: Mapping[str, Any], start: str | None) -> dict[str, Any]:
    # pydantic turns 1.6's Decimal into float
    return {
        "charging_rate_unit": wire["charging_rate_unit"],
        "start_schedule": start,
        "duration_s": wire.get("duration"),
        "min_charging_rate": wire.get("min_charging_rate"),
        "periods": [
            {
                "start_period_s": p["start_period"],
                "limit": p["limit"],
                "number_phases": p.get("number_phases"),
            }
            for p in wire["charging_schedule_period"]
        ],
    }


class ClearCriteria(_Model):
    """ClearChargingProfile: by id alone, else by every criterion given (none: clear all)."""

    profile_id: int | None = None
    connector_id: int | None = Field(None, ge=0)
    purpose: Purpose | None = None
    stack_level: int | None = Field(None, ge=0)

    def matches(self, p: ChargingProfile) -> bool:
        """Whether ``p`` is to be cleared."""
        if self.profile_id is not None:
            return p.id == self.profile_id
        return (
            self.connector_id in (None, p.connector_id)
            and self.purpose in (None, p.purpose)
            and self.stack_level in (None, p.stack_level)
        )


def parse_clear(version: OcppVersion, payload: Mapping[str, Any]) -> ClearCriteria:
    """The criteria of a ClearChargingProfile request (handler kwargs) of either version."""
    with _as_request_error("ClearChargingProfile"):
        criteria = (
            payload
            if not version.schedules_are_list
            else (payload.get("charging_profile_criteria") or {})
        )
        purpose = criteria.get("charging_profile_purpose")
        return ClearCriteria(
            profile_id=payload.get(version.clear_id_field),
            connector_id=criteria.get(version.connector_field),
            purpose=None if purpose is None else version.purposes[purpose],
            stack_level=criteria.get("stack_level"),
        )


class _StoreFile(_Model):
    format: int = 1
    profiles: tuple[ChargingProfile, ...]


class DuplicateProfileError(RequestError):
    """2.0.1 K01.FR.06: the purpose and stack level are taken by another profile id."""

    reason_code = "DuplicateProfile"  # StatusInfo reasonCode of the Rejected answer


class ProfileStore:
    """The profiles installed on one charge point, kept under OCPP's replace rules.

    Not thread-safe; the adapter owns it and persists ``to_json()`` after each change.
    """

    def __init__(
        self, rules: ProfileRules | None = None, profiles: Iterable[ChargingProfile] = ()
    ) -> None:
        self.rules = rules or ProfileRules()
        self._profiles: list[ChargingProfile] = list(profiles)

    @property
    def profiles(self) -> tuple[ChargingProfile, ...]:
        """The installed profiles in installation order."""
        return tuple(self._profiles)

    def install(
        self, profile: ChargingProfile, active_transaction_id: str | None = None,
        reject_duplicates: bool = False,
    ) -> ChargingProfile:
        """Validate and install ``profile``; raise RequestError and change nothing if invalid.

        A profile replaces one with the same id (K01.FR.05). One with the same purpose, stack
        level, connector and transaction but another id is replaced too (1.6 §5.16: "same
        combination of stackLevel / ChargingProfilePurpose ... SHALL replace"), or, with
        ``reject_duplicates`` (2.0.1 K01.FR.06), refused with DuplicateProfileError if their
        validity periods overlap. A local ChargingStationExternalConstraints profile is never
        replaced by another purpose.
        """
        profile = validate_profile(profile, self.rules, active_transaction_id)
        if any(_external_clash(old, profile) for old in self._profiles):
            raise RequestError(f"profile id {profile.id} belongs to an external constraint")
        if reject_duplicates:
            for old in self._profiles:
                if _same_slot(old, profile) and old.id != profile.id and _overlap(old, profile):
                    raise DuplicateProfileError(
                        f"profile {old.id} already has purpose {profile.purpose} and stack "
                        f"level {profile.stack_level} here; clear it or use another level")
        kept = [p for p in self._profiles if not _replaced_by(p, profile)]
        if len(kept) >= self.rules.max_profiles:
            raise RequestError(f"already {len(kept)} profiles installed (the maximum)")
        self._profiles = [*kept, profile]
        return profile

    def clear(self, criteria: ClearCriteria) -> bool:
        """Remove the matching profiles; return whether any matched (Accepted vs Unknown)."""
        return self._remove(criteria.matches)

    def clear_transaction(self, transaction_id: str) -> bool:
        """Remove the TxProfiles of a finished transaction (1.6: "SHOULD be deleted")."""
        return self._remove(lambda p: p.transaction_id == transaction_id)

    def drop_expired(self, now: datetime) -> bool:
        """Remove profiles whose validTo has passed at ``now``; return whether any were."""
        now = utc_whole_s(now)
        return self._remove(lambda p: p.valid_to is not None and p.valid_to <= now)

    def to_json(self) -> str:
        """The installed profiles as JSON, for the caller to persist."""
        return _StoreFile(profiles=self.profiles).model_dump_json(indent=1)

    def dump(self) -> dict[str, Any]:
        """The installed profiles as a JSON-ready dict (see ``energytree.persist``)."""
        return _StoreFile(profiles=self.profiles).model_dump(mode="json")

    @classmethod
    def load(cls, data: object, rules: ProfileRules | None = None) -> ProfileStore:
        """A store from ``dump()`` output; ConfigError if ``data`` is not such output."""
        try:
            stored = _StoreFile.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"stored charging profiles are unreadable: {exc}") from exc
        return cls(rules, stored.profiles)

    @classmethod
    def from_json(cls, text: str | bytes, rules: ProfileRules | None = None) -> ProfileStore:
        """A store from ``to_json()`` output; ConfigError if the text is not such output."""
        try:
            stored = _StoreFile.model_validate_json(text)
        except ValidationError as exc:
            raise ConfigError(f"stored charging profiles are unreadable: {exc}") from exc
        return cls(rules, stored.profiles)

    def _remove(self, match: Callable[[ChargingProfile], bool]) -> bool:
        kept = [p for p in self._profiles if not match(p)]
        changed = len(kept) != len(self._profiles)
        self._profiles = kept
        return changed


def _external_clash(old: ChargingProfile, new: ChargingProfile) -> bool:
    """Whether ``new`` would replace an external constraint by id, or the reverse."""
    purposes = {old.purpose, new.purpose}
    return old.id == new.id and Purpose.external in purposes and len(purposes) == 2


def _replaced_by(old: ChargingProfile, new: ChargingProfile) -> bool:
    return old.id == new.id or _same_slot(old, new)


def _same_slot(old: ChargingProfile, new: ChargingProfile) -> bool:
    """Same purpose, stack level, connector and transaction: only one of them can apply."""
    return (old.purpose is new.purpose and old.stack_level == new.stack_level
            and old.connector_id == new.connector_id
            and old.transaction_id == new.transaction_id)


def _overlap(a: ChargingProfile, b: ChargingProfile) -> bool:
    """Do the validity periods meet? A missing bound is open."""
    return ((a.valid_to is None or b.valid_from is None or b.valid_from < a.valid_to)
            and (b.valid_to is None or a.valid_from is None or a.valid_from < b.valid_to))
