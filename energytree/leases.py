"""External limits as leases: each source is kept separately, may expire, and has a failsafe.

A grid operator, an OCPP backend or an API client sets limits on a node under a source name.
Sources never overwrite each other; the manager combines them by minimum. A lease with a TTL
that is not renewed falls back to its failsafe limits (or disappears if it has none), the
pattern of Alfen's validity time and EEBUS' failsafe limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from energytree.errors import RequestError
from energytree.inputs import describe_validation_error
from energytree.problem import ExternalSource
from energytree.types import ExternalLimits, Timestamp

__all__ = ["SOURCE_NAME_PATTERN", "AppliedLimit", "Lease", "LeaseBook"]

SOURCE_NAME_PATTERN = r"^[A-Za-z0-9_.:/-]{1,240}$"
MAX_SOURCES = 10_000  # one per EVSE is normal (supplier profiles); this only stops a runaway


@dataclass(frozen=True)
class AppliedLimit:
    """What a source imposes at one moment, as an operator reads it off a status page."""

    value: float
    unit: str  # "W" (total_power_W) or "A" (ac_max_current_A)
    valid_until: datetime | None  # its schedule's next step or the lease's end; None: open


class Lease(BaseModel):
    """One external source on one node."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    name: str = Field(pattern=SOURCE_NAME_PATTERN)
    node_uuid: str = Field(min_length=1, max_length=200)
    limits: ExternalLimits
    set_at: Timestamp
    expires_at: Timestamp | None = None
    failsafe: ExternalLimits | None = None
    own_failsafe: bool = False  # the source applies its failsafe itself (its link is down)

    def in_force(self, now: datetime) -> ExternalLimits | None:
        """The limits this lease imposes at ``now``."""
        if self.expires_at is not None and now >= self.expires_at:
            return self.failsafe
        return self.limits

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def in_failsafe(self, now: datetime) -> bool:
        """Expired and fallen back to its failsafe, or applying its own failsafe."""
        return self.expired(now) or self.own_failsafe

    def applied(self, now: datetime) -> AppliedLimit | None:
        """The import limit in force at ``now`` (the failsafe once expired); None if the
        schedule has not started or limits neither power nor current."""
        limits = self.in_force(now)
        entries = sorted(limits.schedule_import if limits else [], key=lambda e: e.timestamp)
        current = [e for e in entries if e.timestamp <= now]
        if not current:
            return None
        root = current[-1].limits_to_root  # of equal timestamps the last wins
        if root.total_power_W is not None:
            value, unit = root.total_power_W, "W"
        elif root.ac_max_current_A is not None:
            value, unit = root.ac_max_current_A, "A"
        else:
            return None
        ends = [e.timestamp for e in entries if e.timestamp > now][:1]
        if not self.expired(now) and self.expires_at is not None:
            ends.append(self.expires_at)
        return AppliedLimit(value, unit, min(ends, default=None))


@dataclass
class LeaseBook:
    """All leases by source name."""

    leases: dict[str, Lease]

    @classmethod
    def empty(cls) -> LeaseBook:
        return cls({})

    def set(self, name: str, node_uuid: str, limits: ExternalLimits, now: datetime,
            ttl_s: float | None = None, failsafe: ExternalLimits | None = None,
            own_failsafe: bool = False) -> Lease:
        """Install or renew a lease; ``ttl_s`` None means it never expires."""
        if ttl_s is not None and not 0 < ttl_s <= 366 * 86_400:
            raise RequestError(f"ttl_s must be between 0 and one year, got {ttl_s}")
        if name not in self.leases and len(self.leases) >= MAX_SOURCES:
            raise RequestError(f"at most {MAX_SOURCES} external-limit sources")
        expires = None if ttl_s is None else now + timedelta(seconds=ttl_s)
        try:
            lease = Lease(name=name, node_uuid=node_uuid, limits=limits, set_at=now,
                          expires_at=expires, failsafe=failsafe, own_failsafe=own_failsafe)
        except ValidationError as exc:  # a bad name from an embedding caller: our error
            raise RequestError(describe_validation_error(exc, "external limits")) from exc
        self.leases[name] = lease
        return lease

    def clear(self, name: str) -> bool:
        return self.leases.pop(name, None) is not None

    def sources(self, now: datetime) -> list[ExternalSource]:
        """The sources in force at ``now`` (expired leases contribute their failsafe)."""
        result = []
        for lease in self.leases.values():
            limits = lease.in_force(now)
            if limits is not None:
                result.append(ExternalSource(lease.name, lease.node_uuid, limits))
        return result

    def next_expiry(self, now: datetime) -> datetime | None:
        pending = [x.expires_at for x in self.leases.values()
                   if x.expires_at is not None and x.expires_at > now]
        return min(pending) if pending else None

    def dump(self) -> list[dict[str, object]]:
        return [lease.model_dump(mode="json", exclude_none=True) for lease in self.leases.values()]

    @classmethod
    def load(cls, items: Iterable[Mapping[str, object]]) -> LeaseBook:
        leases = [Lease.model_validate(item) for item in items]
        return cls({lease.name: lease for lease in leases})
