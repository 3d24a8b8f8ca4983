"""Charging-manager variables (cFos ``CM.name``): constants or formulas, set by the operator.

A variable may refer to other variables as ``CM.name`` or as a bare ``name`` (bare names are
looked up among the variables first), and to anything the environment offers (meters, date,
prices). Cycles among variables are rejected when they are set.

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

from energytree.errors import ConfigError, FormulaError, RequestError
from energytree.formula import Formula, FormulaEnvironment
from energytree.persist import read_json, write_json_atomic

__all__ = [
    "MAX_VARIABLES",
    "NAME_PATTERN",
    "VariableStore",
    "VariableView",
    "VariablesEnvironment",
    "check_name",
    "check_state",
    "dependencies",
    "evaluation_order",
    "expr_of",
    "items_from_json",
    "parse_value",
    "variable_of",
]

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_VARIABLES = 256

Expr = str | float
ChangeCallback = Callable[[frozenset[str]], None]


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


def parse_value(name: str, value: object) -> Formula:
    """A variable's new value: a finite number or a formula text."""
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
            return Formula.parse(text)
        except FormulaError as exc:
            raise FormulaError(f"variable {name!r}: {exc}", exc.position) from None
    try:
        number = float(value)
    except OverflowError:
        raise RequestError(f"variable {name!r}: the number is too large") from None
    if not math.isfinite(number):
        raise RequestError(f"variable {name!r}: {number!r} is not a finite number")
    return Formula.parse(repr(number))


def check_name(name: object) -> str:
    """`name` if it is a valid variable name, else RequestError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise RequestError(
            f"invalid variable name {name!r}: use letters, digits and '_', "
            "not starting with a digit, at most 64 characters"
        )
    return name


def variable_of(name: str) -> str:
    """The variable a formula name refers to: ``CM.x`` and bare ``x`` both mean ``x``."""
    return name[3:] if name.startswith("CM.") else name


def dependencies(formula: Formula, variables: Mapping[str, Formula]) -> list[str]:
    """The variables among `variables` that `formula` refers to."""
    return sorted({v for n in formula.names if (v := variable_of(n)) in variables})


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
        variable = variable_of(name)
        if variable in self._variables:
            return self.value(variable)
        return self._base.lookup(name)

    def value(self, variable: str) -> float:
        """The variable's value; FormulaError if its formula fails."""
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

    Usage::

        store = VariableStore(Path("state/variables.json"))
        store.load()
        store.set_many([("AVAIL", 60)], clear=False, persist=True)
        store.value("AVAIL", env)  # 60.0
    """

    def __init__(self, path: Path | None = None, *, max_variables: int = MAX_VARIABLES) -> None:
        self.path = path
        self.max_variables = max_variables
        self._variables: dict[str, Formula] = {}
        self._saved: dict[str, Formula] = {}  # what the file holds
        self._callbacks: list[ChangeCallback] = []

    def load(self) -> None:
        """Read the file (none yet: no variables).

        A corrupt file raises ConfigError and leaves no variables; the next persisted change
        then replaces that file.
        """
        self._variables, self._saved = {}, {}
        if self.path is None:
            return
        data = read_json(self.path)
        if data is None:
            return
        try:
            items = items_from_json(data)
            loaded = {check_name(name): parse_value(name, expr) for name, expr in items}
            check_state(loaded, self.max_variables, "stored ")
        except (RequestError, FormulaError) as exc:
            raise ConfigError(f"{self.path}: {exc}") from exc
        self._variables, self._saved = loaded, dict(loaded)

    def names(self) -> list[str]:
        return list(self._variables)

    def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call `callback(changed_names)` after every change; returns an unsubscribe function."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def environment(self, base: FormulaEnvironment) -> VariablesEnvironment:
        """`base` plus the variables, for evaluating any formula that may use them."""
        return VariablesEnvironment(self._variables, base)

    def value(self, name: str, env: FormulaEnvironment) -> float:
        if name not in self._variables:
            raise RequestError(f"unknown variable {name!r}")
        return self.environment(env).value(name)

    def get_all(self, env: FormulaEnvironment) -> list[VariableView]:
        """Every variable with its current value; one failing formula does not hide the others."""
        layered = self.environment(env)
        views = []
        for name, formula in self._variables.items():
            try:
                views.append(VariableView(name, expr_of(formula), layered.value(name)))
            except FormulaError as exc:
                views.append(VariableView(name, expr_of(formula), None, str(exc)))
        return views

    def set_many(
        self, items: Sequence[tuple[str, Expr]], *, clear: bool = False, persist: bool = True
    ) -> frozenset[str]:
        """Set all `items` or none (after `clear`: only them); returns the changed names.

        Everything is validated first; on error (RequestError, FormulaError) nothing changes.
        """
        if len(items) > self.max_variables:
            raise RequestError(f"too many variables: at most {self.max_variables} are allowed")
        parsed = [(check_name(name), parse_value(name, value)) for name, value in items]
        variables = _updated(self._variables, parsed, clear)
        saved = _updated(self._saved, parsed, clear) if persist else self._saved
        check_state(variables, self.max_variables, "")
        check_state(saved, self.max_variables, "persisted ")
        if self.path is not None and _changed(self._saved, saved):
            write_json_atomic(self.path, _file_object(saved))
        changed = _changed(self._variables, variables)
        self._variables, self._saved = variables, saved
        if changed:
            self._notify(changed)
        return changed

    def _notify(self, changed: frozenset[str]) -> None:
        for callback in list(self._callbacks):
            try:
                callback(changed)
            except Exception:  # the change stands; one bad subscriber must not undo it
                logger.exception("variable change callback %r failed", callback)


def _updated(
    old: Mapping[str, Formula], items: Sequence[tuple[str, Formula]], clear: bool
) -> dict[str, Formula]:
    new = {} if clear else dict(old)
    new.update(items)
    return new


def _changed(old: Mapping[str, Formula], new: Mapping[str, Formula]) -> frozenset[str]:
    names = old.keys() | new.keys()
    return frozenset(
        n for n in names if n not in old or n not in new or expr_of(old[n]) != expr_of(new[n])
    )


def _file_object(variables: Mapping[str, Formula]) -> dict[str, object]:
    return {"vars": [{"name": n, "expr": expr_of(f)} for n, f in variables.items()]}


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
