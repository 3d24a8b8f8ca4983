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

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from energytree.errors import FormulaError
from energytree.formulaparse import (
    MAX_ARGS,
    MAX_NESTING,
    MAX_NODES,
    MAX_SOURCE_CHARS,
    MAX_TREE_DEPTH,
    Parser,
    located_error,
    measure,
)
from energytree.formulaterms import (
    DATE_FIELDS,
    FUNCTIONS,
    Context,
    EvalFailure,
    FormulaEnvironment,
    MappingEnvironment,
    Num,
    Term,
    canonical_name,
)

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
    "check_evaluable",
    "evaluate_text",
]


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
    root: Term = field(repr=False)
    names: frozenset[str] = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> Formula:
        """Parse `text`; a FormulaError says what is wrong and where."""
        if len(text) > MAX_SOURCE_CHARS:
            raise FormulaError(f"formula is longer than {MAX_SOURCE_CHARS} characters", None)
        try:
            root = Parser(text).formula()
        except EvalFailure as fail:
            raise located_error(text, fail.message, fail.position) from None
        count, depth, names = measure(root)
        if count > MAX_NODES:
            raise FormulaError(f"formula has more than {MAX_NODES} terms", None)
        if depth > MAX_TREE_DEPTH:
            raise FormulaError(f"formula is nested more than {MAX_TREE_DEPTH} terms deep", None)
        return cls(text, root, names)

    @property
    def constant(self) -> float | None:
        """The value if the formula is a plain number, else None."""
        return self.root.value if isinstance(self.root, Num) else None

    def evaluate(self, env: FormulaEnvironment) -> float:
        """The formula's value now; FormulaError if a name is missing or the maths fails."""
        try:
            return self.root.eval(Context(env))
        except EvalFailure as fail:
            raise located_error(self.source, fail.message, fail.position) from None

    def __str__(self) -> str:
        return self.source


class _ReadsLiveValues(Exception):
    """The formula reads a name, the clock or prices: only live evaluation can judge it."""


class _NothingLive:
    """An environment that has nothing: any read means the formula is not constant."""

    @property
    def now(self) -> datetime:
        raise _ReadsLiveValues

    @property
    def timezone(self) -> tzinfo:
        raise _ReadsLiveValues

    def price_schedule(self) -> Sequence[tuple[datetime, float]]:
        raise _ReadsLiveValues

    def lookup(self, name: str) -> float | None:
        raise _ReadsLiveValues


def check_evaluable(formula: Formula) -> None:
    """FormulaError if `formula` reads nothing live and still cannot be evaluated.

    Such a formula (``1/0``, ``10^400``, ``sqrt(-1)``) would fail at every tick, so it is
    refused where it is set; one that fails only for some live values is kept.
    """
    try:
        formula.evaluate(_NothingLive())
    except _ReadsLiveValues:
        return


def evaluate_text(text: str, env: FormulaEnvironment) -> float:
    """Parse and evaluate in one go, for one-off callers."""
    return Formula.parse(text).evaluate(env)
