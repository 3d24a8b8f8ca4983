"""The exceptions energytree raises at its boundaries.

Each error carries a message a person can act on. Adapters translate them into their
protocol's error (HTTP 400, Modbus exception 0x03, OCPP ``Rejected``/CallError, gRPC
``INVALID_ARGUMENT``); a rejected input changes nothing.

    EnergyTreeError
    ├── ConfigError      a site file, register map or other configuration is invalid
    ├── RequestError     an EnergyFlowRequest, target, limit or API argument is invalid
    │   └── NotFoundError    it names an EVSE or node the tree does not have
    ├── FormulaError     a formula does not parse or cannot be evaluated
    ├── MeterError       a meter could not be read, or its values are implausible
    └── PlanningError    the planner failed (callers fall back to the instant allocator)
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EnergyTreeError",
    "FormulaError",
    "MeterError",
    "NotFoundError",
    "PlanningError",
    "RequestError",
]


class EnergyTreeError(Exception):
    """Base of every error energytree raises on purpose."""


class ConfigError(EnergyTreeError):
    """A configuration file or setting is invalid."""


class RequestError(EnergyTreeError):
    """Input from a caller is invalid; the message names the field."""


class NotFoundError(RequestError):
    """The input names an EVSE or node that does not exist."""


class FormulaError(EnergyTreeError):
    """A formula failed to parse or evaluate.

    ``position`` is the 0-based character offset the problem was found at, or None;
    ``reason`` is the message without the location, for quoting it inside another one.
    """

    def __init__(self, message: str, position: int | None = None,
                 reason: str | None = None) -> None:
        super().__init__(message)
        self.position = position
        self.reason = message if reason is None else reason


class MeterError(EnergyTreeError):
    """A meter could not be read or returned implausible values."""


class PlanningError(EnergyTreeError):
    """The optimiser could not produce a plan (timeout, solver failure)."""
