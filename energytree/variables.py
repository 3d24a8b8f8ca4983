"""Charging-manager variables (cFos ``CM.name``): constants or formulas, set by the operator.

A variable may refer to other variables as ``CM.name`` or as a bare ``name`` (bare names are
looked up among the variables first), and to anything the environment offers (meters, date,
prices). Names compare case-insensitively (the seed's ``tarif`` is ``CM.TARIF``); the spelling
last written is the one shown. Cycles among variables, formulas that read nothing live and
still cannot be evaluated (``1/0``), and the predefined read-only names (``_num_charging``, …)
are rejected when they are set.

Persistence follows cFos: a change is written to the file only if something changed, and
``persist=False`` (the HTTP API's ``tmp=1``, meant to spare flash memory) keeps the change in
memory only. The file then still holds the last persisted value of that variable, and that is
what comes back after a restart; the temporary value is lost.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import NamedTuple

from energytree.errors import ConfigError, FormulaError, RequestError
from energytree.formula import Formula, FormulaEnvironment, check_evaluable
from energytree.persist import read_json, write_json_atomic

__all__ = [
    "LOCAL",
    "MAX_VARIABLES",
    "NAME_PATTERN",
    "PREDEFINED",
    "WRITABLE_PREDEFINED",
    "Origin",
    "VariableStore",
    "VariableView",
    "VariablesEnvironment",
    "check_name",
    "check_state",
    "dependencies",
    "evaluation_order",
    "expr_of",
    "items_from_json",
    "key_of",
    "parse_value",
    "variable_of",
]

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_VARIABLES = 256

# cFos's predefined CM variables; energytree computes them, and only the percentage is writable.
PREDEFINED = frozenset({
    "_num_charging", "_num_charging1", "_max_total_current", "_max_total_evse_current",
    "_price", "_price_level", "_surplus", "_org_surplus", "_storage_home_max_capacity",
    "_storage_home_capacity", "_storage_all_max_capacity", "_storage_all_capacity",
    "_storage_home_soc", "_storage_all_soc", "_max_total_current_prc", "_dt",
})
WRITABLE_PREDEFINED = frozenset({"_max_total_current_prc"})

Expr = str | float


@dataclass(frozen=True, slots=True)
class Origin:
    """Who changed the variables: the channel (``http``, ``smgw``, ``grpc``) and the identity."""

    channel: str
    identity: str


LOCAL = Origin("local", "this process")
ChangeCallback = Callable[[frozenset[str], Origin], None]


@dataclass(frozen=True, slots=True)
class VariableView:
    """One variable as the API shows it: its formula (or constant) and its value now."""

    name: str
    expr: Expr
    value: float | None
    error: str | None = None


def expr_of(formula: Formula) -> Expr:
    """A constant as a number (integral ones as int), a formula as its source text."""
    value = formula.constant
    if value is None:
        return formula.source
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def parse_value(name: str, value: object, *, at_the_door: bool = True) -> Formula:
    """A variable's new value: a finite number or a formula text.

    `at_the_door` also refuses a formula that reads nothing live and cannot be evaluated;
    a file written before that check keeps loading (its error shows in ``get_all``).
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise RequestError(f"variable {name!r}: the value must be a number or a formula text")
    if isinstance(value, str):
        text = value
        try:
            not_finite = not math.isfinite(float(text))
        except ValueError:
            not_finite = False
        if not_finite:
            raise RequestError(f"variable {name!r}: {text.strip()!r} is not a finite number")
        try:
            formula = Formula.parse(text)
            if at_the_door:
                check_evaluable(formula)
        except FormulaError as exc:
            raise FormulaError(f"variable {name!r}: {exc}", exc.position) from None
        return formula
    try:
        number = float(value)
    except OverflowError:
        raise RequestError(f"variable {name!r}: the number is too large") from None
    if not math.isfinite(number):
        raise RequestError(f"variable {name!r}: {number!r} is not a finite number")
    return Formula.parse(repr(number))


def check_name(name: object, *, at_the_door: bool = True) -> str:
    """`name` if it is a valid variable name that may be set, else RequestError.

    `at_the_door` also refuses the predefined read-only names (not in files written before).
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise RequestError(
            f"invalid variable name {name!r}: use letters, digits and '_', "
            "not starting with a digit, at most 64 characters"
        )
    key = name.casefold()
    if at_the_door and key in PREDEFINED and key not in WRITABLE_PREDEFINED:
        raise RequestError(
            f"{name!r} is a predefined variable that energytree computes; it cannot be set "
            f"(the writable one is {', '.join(sorted(WRITABLE_PREDEFINED))})"
        )
    return name


def variable_of(name: str) -> str:
    """The variable a formula name refers to: ``CM.x`` and bare ``x`` both mean ``x``."""
    return name[3:] if name.startswith("CM.") else name


def key_of(name: str) -> str:
    """The key a variable is stored under: names compare case-insensitively."""
    return variable_of(name).casefold()


def dependencies(formula: Formula, variables: Mapping[str, Formula]) -> list[str]:
    """The variables (keys of `variables`) that `formula` refers to."""
    return sorted({v for n in formula.names if (v := key_of(n)) in variables})


def evaluation_order(start: str, variables: Mapping[str, Formula]) -> list[str]:
    """`start` and the variables it depends on, dependencies first; RequestError on a cycle."""
    order: list[str] = []
    done: set[str] = set()
    path: list[str] = []
    stack: list[tuple[str, list[str]]] = [(start, dependencies(variables[start], variables))]
    path.append(start)
    while stack:
        name, pending = stack[-1]
        if not pending:
            stack.pop()
            path.pop()
            done.add(name)
            order.append(name)
            continue
        child = pending.pop()
        if child in path:
            cycle = " → ".join([*path[path.index(child) :], child])
            raise RequestError(f"variables refer to each other in a cycle: {cycle}")
        if child not in done:
            path.append(child)
            stack.append((child, dependencies(variables[child], variables)))
    return order


def check_state(variables: Mapping[str, Formula], max_variables: int, what: str) -> None:
    """RequestError if `variables` are too many or refer to each other in a cycle.

    `what` qualifies "variables" in the message ("persisted "), or is empty.
    """
    if len(variables) > max_variables:
        raise RequestError(f"too many {what}variables: at most {max_variables} are allowed")
    for name in variables:
        evaluation_order(name, variables)


class VariablesEnvironment:
    """An environment that resolves variables on top of `base` and remembers their values.

    Use one per evaluation round (tick or request): each variable is computed at most once.
    `variables` are keyed by ``key_of``.
    """

    def __init__(self, variables: Mapping[str, Formula], base: FormulaEnvironment) -> None:
        self._variables = variables
        self._base = base
        self._values: dict[str, float | FormulaError] = {}

    @property
    def now(self) -> datetime:
        return self._base.now

    @property
    def timezone(self) -> tzinfo:
        return self._base.timezone

    def price_schedule(self) -> Sequence[tuple[datetime, float]]:
        return self._base.price_schedule()

    def lookup(self, name: str) -> float | None:
        variable = key_of(name)
        if variable in self._variables:
            return self.value(variable)
        return self._base.lookup(name)

    def value(self, variable: str) -> float:
        """The value of the variable with key `variable`; FormulaError if its formula fails."""
        if variable not in self._values:
            # Dependencies first, so evaluating one variable never recurses into another.
            for name in evaluation_order(variable, self._variables):
                if name not in self._values:
                    try:
                        self._values[name] = self._variables[name].evaluate(self)
                    except FormulaError as exc:
                        self._values[name] = exc
        result = self._values[variable]
        if isinstance(result, FormulaError):
            raise result
        return result


class VariableStore:
    """The charging-manager variables, optionally persisted to a JSON file.

    Variables are kept under ``key_of(name)``, each with the spelling last written.

    Usage::

        store = VariableStore(Path("state/variables.json"))
        store.load()
        store.set_many([("AVAIL", 60)], clear=False, persist=True)
        store.value("avail", env)  # 60.0
    """

    def __init__(self, path: Path | None = None, *, max_variables: int = MAX_VARIABLES) -> None:
        self.path = path
        self.max_variables = max_variables
        self._variables: dict[str, Stored] = {}
        self._saved: dict[str, Stored] = {}  # what the file holds
        self._formulas: dict[str, Formula] = {}
        self._callbacks: list[ChangeCallback] = []

    def load(self) -> None:
        """Read the file (none yet: no variables).

        A corrupt file raises ConfigError and leaves no variables; the next persisted change
        then replaces that file.
        """
        self._replace({}, {})
        if self.path is None:
            return
        data = read_json(self.path)
        if data is None:
            return
        try:
            loaded = _updated({}, _parsed(items_from_json(data), at_the_door=False), clear=True)
            check_state(_formulas(loaded), self.max_variables, "stored ")
        except (RequestError, FormulaError) as exc:
            raise ConfigError(f"{self.path}: {exc}") from exc
        self._replace(loaded, dict(loaded))

    def names(self) -> list[str]:
        return [stored.name for stored in self._variables.values()]

    def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call `callback(changed_names, origin)` after every change; returns an unsubscribe."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def environment(self, base: FormulaEnvironment) -> VariablesEnvironment:
        """`base` plus the variables, for evaluating any formula that may use them."""
        return VariablesEnvironment(self._formulas, base)

    def value(self, name: str, env: FormulaEnvironment) -> float:
        if key_of(name) not in self._variables:
            raise RequestError(f"unknown variable {name!r}")
        return self.environment(env).value(key_of(name))

    def get_all(self, env: FormulaEnvironment) -> list[VariableView]:
        """Every variable with its current value; one failing formula does not hide the others."""
        layered = self.environment(env)
        views = []
        for key, (name, formula) in self._variables.items():
            try:
                views.append(VariableView(name, expr_of(formula), layered.value(key)))
            except FormulaError as exc:
                views.append(VariableView(name, expr_of(formula), None, str(exc)))
        return views

    def set_many(
        self, items: Sequence[tuple[str, Expr]], *, clear: bool = False, persist: bool = True,
        origin: Origin = LOCAL,
    ) -> frozenset[str]:
        """Set all `items` or none (after `clear`: only them); returns the changed names.

        Everything is validated first; on error (RequestError, FormulaError) nothing changes.
        """
        if len(items) > self.max_variables:
            raise RequestError(f"too many variables: at most {self.max_variables} are allowed")
        parsed = _parsed(items)
        variables = _updated(self._variables, parsed, clear)
        saved = _updated(self._saved, parsed, clear) if persist else self._saved
        check_state(_formulas(variables), self.max_variables, "")
        check_state(_formulas(saved), self.max_variables, "persisted ")
        if self.path is not None and _changed(self._saved, saved):
            write_json_atomic(self.path, _file_object(saved))
        changed = _changed(self._variables, variables)
        self._replace(variables, saved)
        if changed:
            self._notify(changed, origin)
        return changed

    def _replace(self, variables: dict[str, Stored], saved: dict[str, Stored]) -> None:
        self._variables, self._saved = variables, saved
        self._formulas = _formulas(variables)

    def _notify(self, changed: frozenset[str], origin: Origin) -> None:
        for callback in list(self._callbacks):
            try:
                callback(changed, origin)
            except Exception:  # the change stands; one bad subscriber must not undo it
                logger.exception("variable change callback %r failed", callback)


class Stored(NamedTuple):
    """A variable as kept: the spelling last written and its formula."""

    name: str
    formula: Formula


def _parsed(items: Sequence[tuple[object, object]], *, at_the_door: bool = True) -> list[Stored]:
    return [Stored(check_name(name, at_the_door=at_the_door),
                   parse_value(str(name), value, at_the_door=at_the_door))
            for name, value in items]


def _formulas(variables: Mapping[str, Stored]) -> dict[str, Formula]:
    return {key: stored.formula for key, stored in variables.items()}


def _updated(old: Mapping[str, Stored], items: Sequence[Stored], clear: bool) -> dict[str, Stored]:
    new = {} if clear else dict(old)
    for item in items:
        new.pop(key_of(item.name), None)  # a new spelling moves the variable to the end
        new[key_of(item.name)] = item
    return new


def _changed(old: Mapping[str, Stored], new: Mapping[str, Stored]) -> frozenset[str]:
    """The names (as last written) whose spelling or formula differ between `old` and `new`."""
    changed = set()
    for key in old.keys() | new.keys():
        before, after = old.get(key), new.get(key)
        if before is None or after is None or before.name != after.name or (
                expr_of(before.formula) != expr_of(after.formula)):
            changed.add((after or before).name)  # type: ignore[union-attr]
    return frozenset(changed)


def _file_object(variables: Mapping[str, Stored]) -> dict[str, object]:
    return {"vars": [{"name": s.name, "expr": expr_of(s.formula)} for s in variables.values()]}


def items_from_json(data: object) -> list[tuple[str, object]]:
    """The (name, expr) pairs of ``{"vars": [{"name": …, "expr": …}, …]}`` (file and API)."""
    entries = data.get("vars") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise RequestError('expected an object {"vars": [{"name": …, "expr": …}, …]}')
    items = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "name" not in entry or "expr" not in entry:
            raise RequestError(f'vars[{i}] must be an object with "name" and "expr"')
        items.append((entry["name"], entry["expr"]))
    return items
