"""Fuzz the formula parser and evaluator: only a Formula, a finite float or FormulaError."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from energytree.errors import FormulaError
from energytree.formula import DATE_FIELDS, FUNCTIONS, Formula, MappingEnvironment

NAMES = ["M1.current", "CM.AVAIL", "power_w", "dt", "E2.power_w"]
START = datetime(2026, 3, 28, 23, tzinfo=UTC)
ENV = MappingEnvironment(
    {"M1.current": 7000.0, "CM.AVAIL": 60.0, "power_w": -1500.5, "dt": 0.0},  # E2.* missing
    now=datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
    timezone=ZoneInfo("Europe/Berlin"),
    prices=[(START + timedelta(hours=i), 0.1 * (i % 5)) for i in range(30)],
)

ALPHABET = "0123456789.eE+-*/%&|^!<>=?:(), _abcxyzMCEPBdate\t\n$"
TOKENS = [
    *"+-*/%&|^!<>?:(),", "==", "!=", "<=", ">=", "&&", "||", "1", "0", "2.5", "1e3", "1e308",
    *NAMES, *(f"{name}(" for name in FUNCTIONS), "date.hour", "date.bogus", " ",
]  # fmt: skip


def check(text: str) -> None:
    """Parsing and evaluating `text` yields a Formula and a finite float, or FormulaError."""
    try:
        formula = Formula.parse(text)
    except FormulaError as exc:
        assert exc.position is None or 0 <= exc.position <= len(text)
        return
    try:
        value = formula.evaluate(ENV)
    except FormulaError:
        return
    assert isinstance(value, float)
    assert math.isfinite(value)


@settings(max_examples=500)
@given(st.text(alphabet=ALPHABET, max_size=80))
def test_arbitrary_text(text):
    check(text)


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_arbitrary_unicode(text):
    check(text)


@settings(max_examples=500)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_token_soup(tokens):
    check("".join(tokens))


def leaves() -> st.SearchStrategy[str]:
    numbers = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
    return st.one_of(
        numbers.map(lambda x: f"({x!r})"),
        st.integers(-(10**6), 10**6).map(str),
        st.sampled_from(NAMES),
        st.sampled_from([f"date.{name}" for name in DATE_FIELDS]),
    )


def grow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    ops = ["+", "-", "*", "/", "%", "^", "&", "|", "==", "!=", "<", "<=", ">", ">=", "&&", "||"]
    binary = st.tuples(children, st.sampled_from(ops), children).map(" ".join)
    unary = st.tuples(st.sampled_from("-!+"), children).map(lambda t: f"{t[0]}({t[1]})")
    ternary = st.tuples(children, children, children).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})")
    one_arg = ["abs", "round", "sqrt", "min_price", "max_price", "min_price_secs", "max_price_secs"]
    call = st.tuples(st.sampled_from(one_arg), children).map(lambda t: f"{t[0]}({t[1]})")
    many = st.tuples(st.sampled_from(["min", "max"]), st.lists(children, min_size=1, max_size=4))
    variadic = many.map(lambda t: f"{t[0]}({', '.join(t[1])})")
    clamp = st.tuples(children, children, children).map(lambda t: f"clamp({', '.join(t)})")
    exists = st.sampled_from(NAMES).map(lambda name: f"exists({name})")
    return st.one_of(binary, unary, ternary, call, variadic, clamp, exists)


@settings(max_examples=500)
@given(st.recursive(leaves(), grow, max_leaves=30))
def test_valid_expressions_parse_and_give_a_finite_float_or_formula_error(text):
    formula = Formula.parse(text)  # generated expressions are always well-formed
    assert formula.source == text
    check(text)
