"""OCPP 1.6J / 2.0.1: charging profiles, their composite schedule, and the site as one charge
point towards the grid operator's backend.

``profiles``, ``composite`` and ``versions`` are pure; ``upstream`` holds the websocket client.
"""

from __future__ import annotations

from adapters.ocpp.composite import (
    CompositePeriod,
    CompositeSchedule,
    LimitPeriod,
    Transaction,
    composite_payload,
    composite_schedule,
)
from adapters.ocpp.profiles import (
    ChargingProfile,
    ClearCriteria,
    ProfileRules,
    ProfileStore,
    Purpose,
    RateUnit,
    parse_clear,
    parse_profile,
)
from adapters.ocpp.versions import BY_SUBPROTOCOL, V16, V201, OcppVersion

__all__ = [
    "BY_SUBPROTOCOL",
    "V16",
    "V201",
    "ChargingProfile",
    "ClearCriteria",
    "CompositePeriod",
    "CompositeSchedule",
    "LimitPeriod",
    "OcppVersion",
    "ProfileRules",
    "ProfileStore",
    "Purpose",
    "RateUnit",
    "Transaction",
    "composite_payload",
    "composite_schedule",
    "parse_clear",
    "parse_profile",
]
