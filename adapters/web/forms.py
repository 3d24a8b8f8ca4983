"""The dashboard's forms, parsed into core calls; every field error is named for the page.

A target form sets either an energy amount or a state of charge, with an optional leave time
in the site's local time (as a person types it). Bad input changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from energytree.errors import RequestError
from energytree.types import OptimizerTarget

__all__ = ["CarFacts", "FormError", "TargetForm", "parse_target_form", "parse_variable_form"]

MAX_TEXT = 200
MAX_EXPR = 2000


class FormError(RequestError):
    """Invalid form fields: ``fields`` maps each field to what is wrong with it."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = dict(fields)


@dataclass(frozen=True)
class CarFacts:
    """What the site knows about the car at an EVSE (to turn a SoC into energy)."""

    soc_percent: float | None
    battery_kwh: float | None


@dataclass(frozen=True)
class TargetForm:
    uuid: str
    target: OptimizerTarget | None  # None: clear the target


def _number(form: Mapping[str, object], name: str, low: float, high: float,
            errors: dict[str, str]) -> float | None:
    raw = form.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        value = float(raw) if isinstance(raw, int | float | str) else math.nan
    except ValueError:
        errors[name] = f"not a number: {str(raw)[:40]!r}"
        return None
    if not math.isfinite(value) or not low <= value <= high:
        errors[name] = f"must be a number from {low:g} to {high:g}"
        return None
    return value


def _leave_time(raw: object, zone: tzinfo, now: datetime, errors: dict[str, str]
                ) -> datetime | None:
    """A local 'YYYY-MM-DDTHH:MM' (or RFC 3339 with an offset) in the future, as UTC."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    try:
        moment = datetime.fromisoformat(str(raw)[:MAX_TEXT].strip())
    except ValueError:
        errors["leave_time"] = "not a date and time (YYYY-MM-DD HH:MM)"
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    if moment <= now:
        errors["leave_time"] = "is in the past"
        return None
    return moment.astimezone(UTC)


def parse_target_form(form: Mapping[str, object], *, evses: list[str], zone: tzinfo,
                      now: datetime, car: Callable[[str], CarFacts]) -> TargetForm:
    """Validate the whole form; raises ``FormError`` naming every bad field."""
    errors: dict[str, str] = {}
    uuid = form.get("uuid")
    if not isinstance(uuid, str) or uuid not in evses:
        raise FormError({"uuid": "choose one of the site's EVSEs"})
    if form.get("clear") in (True, "1", "true", "on"):
        return TargetForm(uuid, None)
    energy = _number(form, "energy_kwh", 0.1, 1000, errors)
    soc = _number(form, "soc_percent", 1, 100, errors)
    now_soc = _number(form, "current_soc_percent", 0, 100, errors)
    leave = _leave_time(form.get("leave_time"), zone, now, errors)
    if not errors and (energy is None) == (soc is None):
        message = "give an energy or a state of charge, not both" if energy is not None else (
            "give an energy or a state of charge")
        errors["energy_kwh" if energy is not None else "soc_percent"] = message
    target = None
    if soc is not None and not errors:
        facts = car(uuid)
        now_soc = facts.soc_percent if now_soc is None else now_soc
        if now_soc is None:
            errors["current_soc_percent"] = "the car's state of charge is unknown: enter it"
        elif facts.battery_kwh is None:
            errors["soc_percent"] = "the car's battery size is unknown: give an energy instead"
        elif soc <= now_soc:
            errors["soc_percent"] = f"the car is already at {now_soc:g} %"
        else:
            target = OptimizerTarget(charge_to_max_percent=soc, car_battery_soc=now_soc,
                                     car_battery_capacity_kWh=facts.battery_kwh,
                                     leave_time=leave)
    if errors:
        raise FormError(errors)
    return TargetForm(uuid, target or OptimizerTarget(energy_amount_needed=energy,
                                                      leave_time=leave))


def parse_variable_form(form: Mapping[str, object]) -> tuple[str, str]:
    """An operator's variable write: a name and a formula or constant (checked by the store)."""
    name, expr = form.get("name"), form.get("expr")
    errors = {}
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_TEXT:
        errors["name"] = "give the variable's name"
    text = str(expr).strip() if isinstance(expr, str | int | float) else ""
    if not text or len(text) > MAX_EXPR:
        errors["expr"] = "give a number or a formula"
    if errors:
        raise FormError(errors)
    return str(name).strip(), text
