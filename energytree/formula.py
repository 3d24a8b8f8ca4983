"""The cFos-compatible formula language: parsed once into a tree, evaluated every tick.

Grammar and precedence (lowest first; C-like, all binary operators left-associative):

    ?:            conditional `x ? y : z`                         (right-associative)
    ||            logical or, short-circuit                       1 or 0
    &&            logical and, short-circuit                      1 or 0
    |             bitwise or  (operands truncated towards zero to integers)
    &             bitwise and (ditto)
    == !=         equality                                        1 or 0
    < <= > >=     relational                                      1 or 0
    + -           additive
    * / %         multiplicative (`%` is C's fmod: the sign of the dividend)
    - + !         unary
    ^             power, `10^2 = 100` (right-associative; `-2^2 = -4`, `2^-1 = 0.5`)

Functions: min(x, …), max(x, …), abs(x), clamp(x, lo, hi) = min(max(x, lo), hi),
round(x) (halves away from zero, as C does), sqrt(x), exists(name), and the price functions
min_price(s), max_price(s), min_price_secs(s), max_price_secs(s) (see ``_price_window``).
Function names are case-insensitive.

Names: dotted identifiers. The prefixes CM, GM, PB, Mn, En, Vn and ``date`` are matched
case-insensitively and handed to the environment upper-cased (``cm.var1`` → ``CM.var1``);
everything after the prefix (field and variable names) is case-sensitive. ``date.*`` is
computed here from the environment's clock in its local time zone; every other name, bare
ones included (``power_w``, ``AVAIL``), is resolved by the environment. A name that does not
resolve is an error naming it; ``exists(name)`` tests for it without failing.

Limits: at most MAX_SOURCE_CHARS characters, MAX_NESTING levels of nesting, MAX_NODES terms,
MAX_TREE_DEPTH terms deep, MAX_ARGS function arguments; evaluation visits each term at most
once (there are no loops), and a result that is not finite (NaN, inf) is an error.

Truth: non-zero is true. Every error is a ``FormulaError`` whose ``position`` is a 0-based
character offset and whose message shows the formula with a caret under that position.
"""

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
    "MAX_NESTING",
    "MAX_NODES",
    "MAX_SOURCE_CHARS",
    "MAX_TREE_DEPTH",
    "Formula",
    "FormulaEnvironment",
    "MappingEnvironment",
    "canonical_name",
    "evaluate_text",
]

MAX_SOURCE_CHARS = 2000
MAX_NESTING = 64  # parentheses, function arguments, ?: branches, unary operators, exponents
MAX_TREE_DEPTH = 256  # bounds the evaluator's recursion (long `a + b + …` chains count too)
MAX_NODES = 1000
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


class _Fail(Exception):
    """An evaluation error before the source text is attached."""

    def __init__(self, message: str, position: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


class _Context:
    """One evaluation: the environment and the local time, computed at most once."""

    __slots__ = ("_local", "env")

    def __init__(self, env: FormulaEnvironment) -> None:
        self.env = env
        self._local: datetime | None = None

    def local_now(self) -> datetime:
        if self._local is None:
            now = self.env.now
            if now.utcoffset() is None:
                raise _Fail("the environment's clock is not timezone-aware", None)
            self._local = now.astimezone(self.env.timezone)
        return self._local


def _checked(value: float, position: int) -> float:
    if not math.isfinite(value):
        raise _Fail("result is not a finite number", position)
    return value


@dataclass(frozen=True, slots=True)
class _Num:
    value: float

    def eval(self, ctx: _Context) -> float:
        return self.value


@dataclass(frozen=True, slots=True)
class _Name:
    name: str
    position: int

    def eval(self, ctx: _Context) -> float:
        if self.name.startswith("date."):
            return float(DATE_FIELDS[self.name[5:]](ctx.local_now()))
        try:
            value = ctx.env.lookup(self.name)
        except FormulaError as exc:
            raise _Fail(f"{self.name}: {str(exc).splitlines()[0]}", self.position) from exc
        if value is None:
            raise _Fail(f"unknown name {self.name!r}", self.position)
        return _checked(float(value), self.position)


@dataclass(frozen=True, slots=True)
class _Exists:
    name: str

    def eval(self, ctx: _Context) -> float:
        if self.name.startswith("date."):
            return float(self.name[5:] in DATE_FIELDS)
        try:
            return float(ctx.env.lookup(self.name) is not None)
        except FormulaError:
            return 1.0  # it exists; its value is what fails


@dataclass(frozen=True, slots=True)
class _Unary:
    op: str
    operand: _Node
    position: int

    def eval(self, ctx: _Context) -> float:
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
class _Binary:
    op: str
    left: _Node
    right: _Node
    position: int

    def eval(self, ctx: _Context) -> float:
        a = self.left.eval(ctx)
        if self.op == "&&":
            return float(bool(a) and bool(self.right.eval(ctx)))
        if self.op == "||":
            return float(bool(a) or bool(self.right.eval(ctx)))
        b = self.right.eval(ctx)
        try:
            return _checked(_ARITHMETIC[self.op](a, b), self.position)
        except ZeroDivisionError:
            raise _Fail("division by zero", self.position) from None
        except OverflowError:
            raise _Fail(f"result of {self.op!r} is too large", self.position) from None
        except ValueError:  # math.pow: 0^-1, (-8)^0.5
            raise _Fail(f"result of {self.op!r} is undefined", self.position) from None


@dataclass(frozen=True, slots=True)
class _Cond:
    test: _Node
    then: _Node
    other: _Node

    def eval(self, ctx: _Context) -> float:
        return self.then.eval(ctx) if self.test.eval(ctx) else self.other.eval(ctx)


def _round(x: float) -> float:
    return math.copysign(math.floor(abs(x) + 0.5), x)


def _sqrt(x: float) -> float:
    if x < 0:
        raise ValueError
    return math.sqrt(x)


def _price_window(ctx: _Context, seconds: float, position: int) -> list[tuple[datetime, float]]:
    """Prices from now until second-of-day `seconds` [s] (local) today, or tomorrow if past.

    Each entry applies from its start until the next one; the first also applies before its
    start and the last forever after. Returned starts are clipped to now.
    """
    if not 0 <= seconds <= 86400:
        raise _Fail("seconds of day must be between 0 and 86400", position)
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
        raise _Fail("price schedule times must be timezone-aware", position) from None
    if not window:
        raise _Fail("no electricity prices are known", position)
    return window


def _price_at(
    ctx: _Context, seconds: float, position: int, pick: Callable
) -> tuple[datetime, float]:
    # min()/max() keep the first of equal prices: the earliest start wins ties.
    return pick(_price_window(ctx, seconds, position), key=lambda entry: entry[1])


def _day_seconds(ctx: _Context, start: datetime) -> float:
    return float(DATE_FIELDS["daysecond"](start.astimezone(ctx.env.timezone)))


_PRICE_FUNCTIONS: Mapping[str, Callable[[_Context, float, int], float]] = {
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
class _Call:
    function: str
    args: tuple[_Node, ...]
    position: int

    def eval(self, ctx: _Context) -> float:
        values = [arg.eval(ctx) for arg in self.args]
        if self.function in _PRICE_FUNCTIONS:
            return _PRICE_FUNCTIONS[self.function](ctx, values[0], self.position)
        try:
            return _checked(float(_MATH_FUNCTIONS[self.function](*values)), self.position)
        except ValueError:
            raise _Fail(f"{self.function}() of a negative number", self.position) from None


_Node = _Num | _Name | _Exists | _Unary | _Binary | _Cond | _Call


# --- parser -----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%&|^!<>?:(),])",
    re.ASCII,
)
_BINARY_PRECEDENCE: Mapping[str, int] = {
    "||": 1, "&&": 2, "|": 3, "&": 4, "==": 5, "!=": 5,
    "<": 6, "<=": 6, ">": 6, ">=": 6, "+": 7, "-": 7, "*": 8, "/": 8, "%": 8,
}  # fmt: skip


def _excerpt(source: str, position: int) -> str:
    """The formula (at most 80 characters of it) with a caret under `position`."""
    flat = re.sub(r"\s", " ", source)
    start = max(0, min(position - 40, len(flat) - 80))
    lead = "…" if start else ""
    tail = "…" if start + 80 < len(flat) else ""
    return f"  {lead}{flat[start : start + 80]}{tail}\n  {' ' * (len(lead) + position - start)}^"


def _error(source: str, message: str, position: int | None) -> FormulaError:
    if position is None:
        return FormulaError(message, None)
    return FormulaError(f"{message} at position {position}\n{_excerpt(source, position)}", position)


def _tokenize(source: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise _Fail(f"unexpected character {source[pos]!r}", pos)
        if match.lastgroup != "space":
            tokens.append((match.lastgroup or "", match.group(), pos))
        pos = match.end()
    tokens.append(("end", "", len(source)))
    return tokens


class _Parser:
    """Recursive descent for ?: and unary/primary; binary operators by operator precedence."""

    def __init__(self, source: str) -> None:
        self.tokens = _tokenize(source)
        self.index = 0
        self.nesting = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.index]

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        kind, got, pos = self.take()
        if got != text or kind != "op":
            raise _Fail(f"expected {text!r} but found {_describe(kind, got)}", pos)

    def nested(self, parse: Callable[[], _Node], position: int) -> _Node:
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise _Fail(f"formula is nested more than {MAX_NESTING} levels deep", position)
        try:
            return parse()
        finally:
            self.nesting -= 1

    def formula(self) -> _Node:
        node = self.ternary()
        kind, text, pos = self.peek()
        if kind != "end":
            raise _Fail(f"unexpected {_describe(kind, text)}", pos)
        return node

    def ternary(self) -> _Node:
        test = self.binary()
        kind, text, pos = self.peek()
        if (kind, text) != ("op", "?"):
            return test
        self.take()
        then = self.nested(self.ternary, pos)
        self.expect(":")
        return _Cond(test, then, self.nested(self.ternary, pos))

    def binary(self) -> _Node:
        operands = [self.unary()]
        operators: list[tuple[str, int]] = []
        while (token := self.peek())[0] == "op" and token[1] in _BINARY_PRECEDENCE:
            self.take()
            precedence = _BINARY_PRECEDENCE[token[1]]
            while operators and _BINARY_PRECEDENCE[operators[-1][0]] >= precedence:
                _reduce(operands, operators.pop())
            operators.append((token[1], token[2]))
            operands.append(self.unary())
        while operators:
            _reduce(operands, operators.pop())
        return operands[0]

    def unary(self) -> _Node:
        kind, text, pos = self.peek()
        if kind != "op" or text not in "-+!":
            return self.power()
        self.take()
        operand = self.nested(self.unary, pos)
        if text == "-" and isinstance(operand, _Num):
            return _Num(-operand.value)  # so that "-5" is a constant
        return _Unary(text, operand, pos)

    def power(self) -> _Node:
        base = self.primary()
        kind, text, pos = self.peek()
        if (kind, text) != ("op", "^"):
            return base
        self.take()
        return _Binary("^", base, self.nested(self.unary, pos), pos)

    def primary(self) -> _Node:
        kind, text, pos = self.take()
        if kind == "number":
            value = float(text)
            if not math.isfinite(value):
                raise _Fail("number is too large", pos)
            return _Num(value)
        if kind == "name":
            if self.peek()[1] == "(" and self.peek()[0] == "op":
                return self.call(text, pos)
            return _name(text, pos)
        if (kind, text) == ("op", "("):
            node = self.nested(self.ternary, pos)
            self.expect(")")
            return node
        raise _Fail(f"expected a number, name or '(' but found {_describe(kind, text)}", pos)

    def call(self, function: str, position: int) -> _Node:
        function = function.lower()
        if function not in FUNCTIONS:
            known = ", ".join(sorted(FUNCTIONS))
            raise _Fail(f"unknown function {function!r} (known: {known})", position)
        self.expect("(")
        args: list[_Node] = []
        if self.peek()[1] != ")":
            args.append(self.nested(self.ternary, position))
            while self.peek()[1] == "," and self.peek()[0] == "op":
                self.take()
                args.append(self.nested(self.ternary, position))
                if len(args) > MAX_ARGS:
                    raise _Fail(f"{function}() takes at most {MAX_ARGS} arguments", position)
        self.expect(")")
        low, high = FUNCTIONS[function]
        if not low <= len(args) <= high:
            wanted = str(low) if low == high else f"{low} to {high}"
            raise _Fail(f"{function}() takes {wanted} argument(s), got {len(args)}", position)
        if function != "exists":
            return _Call(function, tuple(args), position)
        if not isinstance(args[0], _Name):
            raise _Fail("exists() takes a name, e.g. exists(CM.var1)", position)
        return _Exists(args[0].name)


def _describe(kind: str, text: str) -> str:
    return "the end of the formula" if kind == "end" else repr(text)


def _name(text: str, position: int) -> _Name:
    name = canonical_name(text)
    if name.startswith("date.") and name[5:] not in DATE_FIELDS:
        known = ", ".join(DATE_FIELDS)
        raise _Fail(f"unknown field {name!r} (date has: {known})", position)
    return _Name(name, position)


def _reduce(operands: list[_Node], op: tuple[str, int]) -> None:
    right = operands.pop()
    operands.append(_Binary(op[0], operands.pop(), right, op[1]))


def _children(node: _Node) -> tuple[_Node, ...]:
    if isinstance(node, _Unary):
        return (node.operand,)
    if isinstance(node, _Binary):
        return (node.left, node.right)
    if isinstance(node, _Cond):
        return (node.test, node.then, node.other)
    return node.args if isinstance(node, _Call) else ()


def _measure(root: _Node) -> tuple[int, int, frozenset[str]]:
    """(node count, depth, names the environment must resolve), without recursion."""
    count, depth, names = 0, 0, set()
    stack = [(root, 1)]
    while stack:
        node, level = stack.pop()
        count, depth = count + 1, max(depth, level)
        if isinstance(node, _Name | _Exists) and not node.name.startswith("date."):
            names.add(node.name)
        stack.extend((child, level + 1) for child in _children(node))
    return count, depth, frozenset(names)


# --- public face ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Formula:
    """A parsed formula; immutable and cheap to evaluate again and again.

    Usage::

        f = Formula.parse("min(16000, 29000 - M3.current)")
        f.names            # frozenset({'M3.current'})
        f.evaluate(env)    # float, or FormulaError

    `names` are the canonical names the environment must resolve (for dependency tracking):
    ``exists()`` arguments included, ``date.*`` not.
    """

    source: str
    root: _Node = field(repr=False)
    names: frozenset[str] = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> Formula:
        """Parse `text`; a FormulaError says what is wrong and where."""
        if len(text) > MAX_SOURCE_CHARS:
            raise FormulaError(f"formula is longer than {MAX_SOURCE_CHARS} characters", None)
        try:
            root = _Parser(text).formula()
        except _Fail as fail:
            raise _error(text, fail.message, fail.position) from None
        count, depth, names = _measure(root)
        if count > MAX_NODES:
            raise FormulaError(f"formula has more than {MAX_NODES} terms", None)
        if depth > MAX_TREE_DEPTH:
            raise FormulaError(f"formula is nested more than {MAX_TREE_DEPTH} terms deep", None)
        return cls(text, root, names)

    @property
    def constant(self) -> float | None:
        """The value if the formula is a plain number, else None."""
        return self.root.value if isinstance(self.root, _Num) else None

    def evaluate(self, env: FormulaEnvironment) -> float:
        """The formula's value now; FormulaError if a name is missing or the maths fails."""
        try:
            return self.root.eval(_Context(env))
        except _Fail as fail:
            raise _error(self.source, fail.message, fail.position) from None

    def __str__(self) -> str:
        return self.source


def evaluate_text(text: str, env: FormulaEnvironment) -> float:
    """Parse and evaluate in one go, for one-off callers."""
    return Formula.parse(text).evaluate(env)
