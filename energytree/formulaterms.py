"""The terms a parsed formula is made of, and how each evaluates (see ``formula``)."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Protocol

from energytree.errors import FormulaError

__all__ = [
    "DATE_FIELDS",
    "FUNCTIONS",
    "MAX_ARGS",
    "Binary",
    "Call",
    "Cond",
    "Context",
    "EvalFailure",
    "Exists",
    "FormulaEnvironment",
    "MappingEnvironment",
    "Name",
    "Num",
    "Term",
    "Unary",
    "canonical_name",
]

MAX_ARGS = 32


class FormulaEnvironment(Protocol):
    """What a formula may see: names, the clock, the local time zone and prices."""

    def lookup(self, name: str) -> float | None:
        """The value of a canonical name, or None if it does not exist."""
        ...

    @property
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    @property
    def timezone(self) -> tzinfo:
        """The local time zone for ``date.*`` and the price functions (DST applies)."""
        ...

    def price_schedule(self) -> Sequence[tuple[datetime, float]]:
        """(start, price per kWh) entries sorted by start; each applies until the next."""
        ...


@dataclass(frozen=True)
class MappingEnvironment:
    """An environment backed by a dict, for tests and simple callers.

    Usage::

        env = MappingEnvironment({"M1.current": 7000.0}, now=t, timezone=ZoneInfo("Europe/Berlin"))
        Formula.parse("M1.current >= 6500 ? M1.current : 0").evaluate(env)  # 7000.0
    """

    values: Mapping[str, float] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    timezone: tzinfo = UTC
    prices: Sequence[tuple[datetime, float]] = ()

    def lookup(self, name: str) -> float | None:
        value = self.values.get(name)
        return None if value is None else float(value)

    def price_schedule(self) -> Sequence[tuple[datetime, float]]:
        return self.prices


DATE_FIELDS: Mapping[str, Callable[[datetime], float]] = {
    "year": lambda t: t.year,
    "month": lambda t: t.month - 1,
    "day": lambda t: t.day,
    "weekday": lambda t: t.isoweekday() % 7,
    "yearday": lambda t: t.timetuple().tm_yday - 1,
    "hour": lambda t: t.hour,
    "minute": lambda t: t.minute,
    "second": lambda t: t.second,
    "daysecond": lambda t: t.hour * 3600 + t.minute * 60 + t.second,
    "dayminute": lambda t: t.hour * 60 + t.minute,
    "dst": lambda t: 1 if t.dst() else 0,
    "timestamp": lambda t: math.floor(t.timestamp()),
}

_PREFIX = re.compile(r"(?:cm|gm|pb|[mev][0-9]+)", re.IGNORECASE)


def canonical_name(name: str) -> str:
    """The form handed to the environment: known prefixes upper-cased, ``date`` lower-cased."""
    head, dot, rest = name.partition(".")
    if not dot:
        return name
    if head.lower() == "date":
        return f"date.{rest}"
    if _PREFIX.fullmatch(head):
        return f"{head.upper()}.{rest}"
    return name


# --- evaluation tree --------------------------------------------------------------------------


class EvalFailure(Exception):
    """An evaluation error before the source text is attached."""

    def __init__(self, message: str, position: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


class Context:
    """One evaluation: the environment and the local time, computed at most once."""

    __slots__ = ("_local", "env")

    def __init__(self, env: FormulaEnvironment) -> None:
        self.env = env
        self._local: datetime | None = None

    def local_now(self) -> datetime:
        if self._local is None:
            now = self.env.now
            if now.utcoffset() is None:
                raise EvalFailure("the environment's clock is not timezone-aware", None)
            self._local = now.astimezone(self.env.timezone)
        return self._local


def _checked(value: float, position: int) -> float:
    if not math.isfinite(value):
        raise EvalFailure("result is not a finite number", position)
    return value


@dataclass(frozen=True, slots=True)
class Num:
    value: float

    def eval(self, ctx: Context) -> float:
        return self.value


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    position: int

    def eval(self, ctx: Context) -> float:
        if self.name.startswith("date."):
            return float(DATE_FIELDS[self.name[5:]](ctx.local_now()))
        try:
            value = ctx.env.lookup(self.name)
        except FormulaError as exc:
            raise EvalFailure(f"{self.name}: {exc.reason}", self.position) from exc
        if value is None:
            raise EvalFailure(f"unknown name {self.name!r}", self.position)
        return _checked(float(value), self.position)


@dataclass(frozen=True, slots=True)
class Exists:
    name: str

    def eval(self, ctx: Context) -> float:
        if self.name.startswith("date."):
            return float(self.name[5:] in DATE_FIELDS)
        try:
            return float(ctx.env.lookup(self.name) is not None)
        except FormulaError:
            return 1.0  # it exists; its value is what fails


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Term
    position: int

    def eval(self, ctx: Context) -> float:
        value = self.operand.eval(ctx)
        if self.op == "!":
            return float(not value)
        return -value if self.op == "-" else value


def _fmod(a: float, b: float) -> float:
    if b == 0:
        raise ZeroDivisionError
    return math.fmod(a, b)


_ARITHMETIC: Mapping[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": _fmod,
    "^": math.pow,
    "&": lambda a, b: float(int(a) & int(b)),
    "|": lambda a, b: float(int(a) | int(b)),
    "==": lambda a, b: float(a == b),
    "!=": lambda a, b: float(a != b),
    "<": lambda a, b: float(a < b),
    "<=": lambda a, b: float(a <= b),
    ">": lambda a, b: float(a > b),
    ">=": lambda a, b: float(a >= b),
}


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Term
    right: Term
    position: int

    def eval(self, ctx: Context) -> float:
        a = self.left.eval(ctx)
        if self.op == "&&":
            return float(bool(a) and bool(self.right.eval(ctx)))
        if self.op == "||":
            return float(bool(a) or bool(self.right.eval(ctx)))
        b = self.right.eval(ctx)
        try:
            return _checked(_ARITHMETIC[self.op](a, b), self.position)
        except ZeroDivisionError:
            raise EvalFailure("division by zero", self.position) from None
        except OverflowError:
            raise EvalFailure(f"result of {self.op!r} is too large", self.position) from None
        except ValueError:  # math.pow: 0^-1, (-8)^0.5
            raise EvalFailure(f"result of {self.op!r} is undefined", self.position) from None


@dataclass(frozen=True, slots=True)
class Cond:
    test: Term
    then: Term
    other: Term

    def eval(self, ctx: Context) -> float:
        return self.then.eval(ctx) if self.test.eval(ctx) else self.other.eval(ctx)


def _round(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)


def _sqrt(x: float) -> float:
    if x < 0:
        raise ValueError
    return math.sqrt(x)


def _price_window(ctx: Context, seconds: float, position: int) -> list[tuple[datetime, float]]:
    """Prices from now until second-of-day `seconds` [s] (local) today, or tomorrow if past.

    Each entry applies from its start until the next one; the first also applies before its
    start and the last forever after. Returned starts are clipped to now.
    """
    if not 0 <= seconds <= 86400:
        raise EvalFailure("seconds of day must be between 0 and 86400", position)
    local = ctx.local_now()
    now = ctx.env.now
    end = datetime.combine(local.date(), time(), tzinfo=local.tzinfo) + timedelta(seconds=seconds)
    if end <= now:
        end = datetime.combine(local.date() + timedelta(days=1), time(), tzinfo=local.tzinfo)
        end += timedelta(seconds=seconds)
    window = []
    try:
        entries = sorted(ctx.env.price_schedule(), key=lambda entry: entry[0])
        for i, (start, price) in enumerate(entries):
            until = entries[i + 1][0] if i + 1 < len(entries) else None
            if (until is None or until > now) and (i == 0 or start < end):
                window.append((now if i == 0 else max(start, now), _checked(price, position)))
    except TypeError:  # a naive datetime among aware ones
        raise EvalFailure("price schedule times must be timezone-aware", position) from None
    if not window:
        raise EvalFailure("no electricity prices are known", position)
    return window


def _price_at(
    ctx: Context, seconds: float, position: int, pick: Callable
) -> tuple[datetime, float]:
    # min()/max() keep the first of equal prices: the earliest start wins ties.
    return pick(_price_window(ctx, seconds, position), key=lambda entry: entry[1])


def _day_seconds(ctx: Context, start: datetime) -> float:
    return float(DATE_FIELDS["daysecond"](start.astimezone(ctx.env.timezone)))


_PRICE_FUNCTIONS: Mapping[str, Callable[[Context, float, int], float]] = {
    "min_price": lambda ctx, s, pos: _price_at(ctx, s, pos, min)[1],
    "max_price": lambda ctx, s, pos: _price_at(ctx, s, pos, max)[1],
    "min_price_secs": lambda ctx, s, pos: _day_seconds(ctx, _price_at(ctx, s, pos, min)[0]),
    "max_price_secs": lambda ctx, s, pos: _day_seconds(ctx, _price_at(ctx, s, pos, max)[0]),
}

_MATH_FUNCTIONS: Mapping[str, Callable[..., float]] = {
    "min": lambda *values: min(values),
    "max": lambda *values: max(values),
    "abs": abs,
    "clamp": lambda x, lo, hi: min(max(x, lo), hi),
    "round": _round,
    "sqrt": _sqrt,
}

FUNCTIONS: Mapping[str, tuple[int, int]] = {  # name → (min args, max args)
    "min": (1, MAX_ARGS),
    "max": (1, MAX_ARGS),
    "abs": (1, 1),
    "clamp": (3, 3),
    "round": (1, 1),
    "sqrt": (1, 1),
    "exists": (1, 1),
    **{name: (1, 1) for name in _PRICE_FUNCTIONS},
}


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Term, ...]
    position: int

    def eval(self, ctx: Context) -> float:
        values = [arg.eval(ctx) for arg in self.args]
        if self.function in _PRICE_FUNCTIONS:
            return _PRICE_FUNCTIONS[self.function](ctx, values[0], self.position)
        try:
            return _checked(float(_MATH_FUNCTIONS[self.function](*values)), self.position)
        except ValueError:
            raise EvalFailure(f"{self.function}() of a negative number", self.position) from None


Term = Num | Name | Exists | Unary | Binary | Cond | Call


