"""The formula language: every documented cFos example, precedence, errors, dates, prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from energytree.errors import FormulaError
from energytree.formula import (
    MAX_NESTING,
    MAX_SOURCE_CHARS,
    Formula,
    MappingEnvironment,
    canonical_name,
    evaluate_text,
)

BERLIN = ZoneInfo("Europe/Berlin")


def local(text: str) -> datetime:
    """A Berlin wall-clock time, e.g. "2026-06-06 08:00"."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def env(values: dict[str, float] | None = None, at: str = "2026-06-03 12:00", **kw):
    return MappingEnvironment(values or {}, now=local(at), timezone=BERLIN, **kw)


# (id, formula, names → values, local time, expected)
DOCUMENTED = [
    ("8A-from-0800-at-0800", "date.dayminute >= 480 ? 8000 : 0", {}, "2026-06-03 08:00", 8000),
    ("8A-from-0800-at-0759", "date.dayminute >= 480 ? 8000 : 0", {}, "2026-06-03 07:59", 0),
    # cFos' example says "Saturday and Sunday" but tests 5 (Friday) and 6 (Saturday); Sun=0.
    ("weekend-sat", "date.weekday == 5 || date.weekday == 6 ? 16000 : 0", {}, "2026-06-06 09:00",
     16000),
    ("weekend-fri", "date.weekday == 5 || date.weekday == 6 ? 16000 : 0", {}, "2026-06-05 09:00",
     16000),
    ("weekend-sun", "date.weekday == 5 || date.weekday == 6 ? 16000 : 0", {}, "2026-06-07 09:00",
     0),
    ("input2-on", "PB.input2 ? 6000 : 0", {"PB.input2": 1}, "2026-06-03 12:00", 6000),
    ("input2-off", "PB.input2 ? 6000 : 0", {"PB.input2": 0}, "2026-06-03 12:00", 0),
    ("cm-var-lowercase-prefix", "cm.var1 ? 6000 : 0", {"CM.var1": 2}, "2026-06-03 12:00", 6000),
    ("house-connection", "55000 * AVAIL / 100", {"AVAIL": 40}, "2026-06-03 12:00", 22000),
    ("house-connection-cm", "55000 * CM.AVAIL / 100", {"CM.AVAIL": 40}, "2026-06-03 12:00", 22000),
    ("flat-meter", "min(16000, 29000 - M3.current)", {"M3.current": 20000}, "2026-06-03 12:00",
     9000),
    ("pause-below-6.5A", "M1.current >= 6500 ? M1.current : 0", {"M1.current": 6000},
     "2026-06-03 12:00", 0),
    ("pass-above-6.5A", "M1.current >= 6500 ? M1.current : 0", {"M1.current": 7000},
     "2026-06-03 12:00", 7000),
    ("apartment", "16000 - M1.current", {"M1.current": 4500}, "2026-06-03 12:00", 11500),
    ("integrate-energy", "import_wh + M1.power_w * dt / 3600",
     {"import_wh": 1000, "M1.power_w": 3600, "dt": 2}, "2026-06-03 12:00", 1002),
    ("smooth-20s", "(power_w * (20 - dt) + M1.power_w * dt) / 20",
     {"power_w": 1000, "M1.power_w": 2000, "dt": 5}, "2026-06-03 12:00", 1250),
    ("round-1-decimal", "round(10*x)/10", {"x": 2.345}, "2026-06-03 12:00", 2.3),
    ("power", "10^2", {}, "2026-06-03 12:00", 100),
    ("abs", "abs(-2)", {}, "2026-06-03 12:00", 2),
    ("clamp-low", "clamp(2, 6, 16)", {}, "2026-06-03 12:00", 6),
    ("clamp-high", "clamp(20, 6, 16)", {}, "2026-06-03 12:00", 16),
    ("clamp-inside", "clamp(10, 6, 16)", {}, "2026-06-03 12:00", 10),
    ("tarif-reduced", "CM.TARIF == 1 ? 16000 : 6000", {"CM.TARIF": 1}, "2026-06-03 12:00", 16000),
    ("tarif-normal", "CM.TARIF == 1 ? 16000 : 6000", {"CM.TARIF": 0}, "2026-06-03 12:00", 6000),
    ("soc", "V1.soc < 50", {"V1.soc": 42}, "2026-06-03 12:00", 1),
    ("global-meter", "GM.grid_demand.power_w / 1000", {"GM.grid_demand.power_w": 2500},
     "2026-06-03 12:00", 2.5),
    ("sqrt", "sqrt(16)", {}, "2026-06-03 12:00", 4),
    ("max-many", "max(1, 7, 3, -2)", {}, "2026-06-03 12:00", 7),
    ("exists-yes", "exists(CM.var1) ? CM.var1 : 3", {"CM.var1": 9}, "2026-06-03 12:00", 9),
    ("exists-no", "exists(CM.var1) ? CM.var1 : 3", {}, "2026-06-03 12:00", 3),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "values", "at", "expected"),
    [case[1:] for case in DOCUMENTED],
    ids=[case[0] for case in DOCUMENTED],
)
def test_documented_examples(text, values, at, expected):
    assert Formula.parse(text).evaluate(env(values, at)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 ^ 3 ^ 2", 512),  # right-associative
        ("-2 ^ 2", -4),  # ^ binds tighter than unary minus
        ("2 ^ -1", 0.5),
        ("10 - 4 - 3", 3),  # left-associative
        ("12 / 3 / 2", 2),
        ("7 % 3", 1),
        ("-7 % 3", -1),  # C fmod: sign of the dividend
        ("6 & 3", 2),
        ("6 | 3", 7),
        ("6.9 & 3.9", 2),  # truncated to integers
        ("1 | 2 & 0", 1),  # & before |
        ("1 + 1 == 2", 1),
        ("1 < 2 == 1", 1),  # relational before equality
        ("2 != 2", 0),
        ("!0", 1),
        ("!5", 0),
        ("0 || 0 && 1", 0),
        ("1 || 0 && 0", 1),  # && before ||
        ("0 ? 1 : 0 ? 2 : 3", 3),  # right-associative ternary
        ("1 ? 2 : 3 + 10", 2),  # ternary lowest
        ("round(2.5)", 3),
        ("round(-2.5)", -3),  # halves away from zero, as in C
        ("1e3 + .5", 1000.5),
        ("min(3)", 3),
        ("MAX(1, 2)", 2),  # function names are case-insensitive
    ],
)
def test_precedence_and_operators(text, expected):
    assert evaluate_text(text, env()) == pytest.approx(expected)


def test_logic_short_circuits_so_the_unevaluated_side_may_fail():
    assert evaluate_text("0 && missing.name", env()) == 0
    assert evaluate_text("1 || 1 / 0", env()) == 1
    assert evaluate_text("1 ? 5 : 1 / 0", env()) == 5


def test_names_are_canonical_and_collected():
    formula = Formula.parse("cm.var1 + m1.current + e2.power_w + date.hour + exists(Gm.x) + dt")
    assert formula.names == {"CM.var1", "M1.current", "E2.power_w", "GM.x", "dt"}
    assert canonical_name("DATE.hour") == "date.hour"
    assert canonical_name("cm.Var1") == "CM.Var1"  # variable names keep their case


def test_constant_formulas():
    assert Formula.parse("42").constant == 42
    assert Formula.parse(" -1.5 ").constant == -1.5
    assert Formula.parse("1 + 1").constant is None
    assert str(Formula.parse("M1.current * 2")) == "M1.current * 2"


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("1 +", 3, "expected a number"),
        ("(1 + 2", 6, "expected ')'"),
        ("1 2", 2, "unexpected '2'"),
        ("1 + clamp(1, 2)", 4, "clamp() takes 3 argument(s), got 2"),
        ("abs()", 0, "abs() takes 1"),
        ("min()", 0, "min() takes 1 to 32"),
        ("foo(1)", 0, "unknown function 'foo'"),
        ("date.weeekday", 0, "unknown field 'date.weeekday'"),
        ("exists(1 + 2)", 0, "exists() takes a name"),
        ("3 $ 4", 2, "unexpected character '$'"),
        ("1e999", 0, "number is too large"),
        ("1 ? 2", 5, "expected ':'"),
    ],
)
def test_parse_errors_carry_position_and_caret(text, position, fragment):
    with pytest.raises(FormulaError) as caught:
        Formula.parse(text)
    assert caught.value.position == position
    message = str(caught.value)
    assert fragment in message
    assert f"at position {position}" in message
    excerpt, caret = message.splitlines()[-2:]
    assert excerpt == f"  {text}"
    assert caret == " " * (2 + position) + "^"


@pytest.mark.parametrize(
    ("text", "values", "position", "fragment"),
    [
        ("1 + 10 / (M1.power_w - 5)", {"M1.power_w": 5}, 7, "division by zero"),
        ("5 % 0", {}, 2, "division by zero"),
        ("2 * M9.power_w", {}, 4, "unknown name 'M9.power_w'"),
        ("10 ^ 400", {}, 3, "too large"),
        ("1e300 * 1e300", {}, 6, "not a finite number"),
        ("0 ^ -1", {}, 2, "undefined"),
        ("(-8) ^ 0.5", {}, 5, "undefined"),
        ("sqrt(-1)", {}, 0, "negative"),
        ("x", {"x": float("nan")}, 0, "not a finite number"),
        ("1.7976931348623157e308 | 2^970", {}, 23, "too large"),  # int beyond float range
    ],
)
def test_evaluation_errors_carry_position(text, values, position, fragment):
    with pytest.raises(FormulaError) as caught:
        Formula.parse(text).evaluate(env(values))
    assert caught.value.position == position
    assert fragment in str(caught.value)


def test_huge_exponent_is_cheap_and_rejected():
    with pytest.raises(FormulaError, match="too large"):
        evaluate_text("9 ^ 9 ^ 9 ^ 9", env())
    assert evaluate_text("0.5 ^ 1e300", env()) == 0


def test_limits():
    with pytest.raises(FormulaError, match="longer than"):
        Formula.parse("1" * (MAX_SOURCE_CHARS + 1))
    Formula.parse("(" * MAX_NESTING + "1" + ")" * MAX_NESTING)
    with pytest.raises(FormulaError, match="nested more than") as caught:
        Formula.parse("(" * (MAX_NESTING + 1) + "1" + ")" * (MAX_NESTING + 1))
    assert caught.value.position == MAX_NESTING
    with pytest.raises(FormulaError, match="nested more than"):
        Formula.parse("-" * 100 + "1")
    with pytest.raises(FormulaError, match="more than 1000 terms"):
        Formula.parse("+".join(["1"] * 600))
    with pytest.raises(FormulaError, match="terms deep"):
        Formula.parse("+".join(["1"] * 300))
    with pytest.raises(FormulaError, match="at most 32 arguments"):
        Formula.parse("min(" + ",".join(["1"] * 40) + ")")


def test_long_formula_error_shows_an_excerpt():
    text = "1 + " * 100 + "nope"
    with pytest.raises(FormulaError) as caught:
        evaluate_text(text, env())
    excerpt, caret = str(caught.value).splitlines()[-2:]
    assert len(excerpt) < 100
    assert excerpt[caret.index("^") :].startswith("nope")


def test_naive_clock_is_an_error():
    naive = MappingEnvironment({}, now=datetime(2026, 1, 1), timezone=BERLIN)
    with pytest.raises(FormulaError, match="timezone-aware"):
        evaluate_text("date.hour", naive)


# --- date.* ------------------------------------------------------------------------------------


def test_date_fields():
    at = env(at="2026-01-01 00:00:07")  # a Thursday, winter time
    fields = {
        "year": 2026, "month": 0, "day": 1, "weekday": 4, "yearday": 0, "hour": 0, "minute": 0,
        "second": 7, "daysecond": 7, "dayminute": 0, "dst": 0,
        "timestamp": datetime(2025, 12, 31, 23, 0, 7, tzinfo=UTC).timestamp(),
    }  # fmt: skip
    for name, expected in fields.items():
        assert evaluate_text(f"date.{name}", at) == expected, name
    last = env(at="2028-12-31 23:59:59")  # leap year: yearday 365, month 11
    assert evaluate_text("date.yearday * 100 + date.month", last) == 36511
    assert evaluate_text("date.daysecond", last) == 86399


@pytest.mark.parametrize(
    ("utc", "hour", "dst"),
    [
        ("2026-03-29T00:59:59", 1, 0),  # last Sunday of March: 02:00 CET → 03:00 CEST
        ("2026-03-29T01:00:00", 3, 1),
        ("2026-10-25T00:59:59", 2, 1),  # last Sunday of October: 03:00 CEST → 02:00 CET
        ("2026-10-25T01:00:00", 2, 0),
    ],
)
def test_dst_transitions_in_berlin(utc, hour, dst):
    now = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    at = MappingEnvironment({}, now=now, timezone=BERLIN)
    assert evaluate_text("date.hour", at) == hour
    assert evaluate_text("date.dst", at) == dst


def test_charging_rule_follows_local_time_across_dst():
    # 08:00 local is 07:00 UTC in winter and 06:00 UTC in summer.
    rule = Formula.parse("date.dayminute >= 480 ? 8000 : 0")
    summer = MappingEnvironment({}, now=datetime(2026, 6, 1, 6, 0, tzinfo=UTC), timezone=BERLIN)
    winter = MappingEnvironment({}, now=datetime(2026, 12, 1, 6, 0, tzinfo=UTC), timezone=BERLIN)
    assert (rule.evaluate(summer), rule.evaluate(winter)) == (8000, 0)


# --- prices ------------------------------------------------------------------------------------


def hourly_prices(first: str, prices: list[float]) -> list[tuple[datetime, float]]:
    start = local(first)
    return [(start + timedelta(hours=i), price) for i, price in enumerate(prices)]


# 20:00 today … 11:00 tomorrow; cheapest before 07:00 is 03:00 (0.10), cheaper still at 09:00.
PRICES = hourly_prices(
    "2026-06-03 20:00",
    [0.40, 0.35, 0.50, 0.30, 0.25, 0.20, 0.20, 0.10, 0.15, 0.30, 0.30, 0.30, 0.30, 0.05, 0.3, 0.4],
)


def test_min_price_crosses_midnight():
    at = env({"CM._price": 0.5}, "2026-06-03 22:30", prices=PRICES)
    assert evaluate_text("min_price(25200)", at) == 0.10
    assert evaluate_text("min_price_secs(25200)", at) == 3 * 3600
    assert evaluate_text("max_price(25200)", at) == 0.50  # the current hour, 22:00
    assert evaluate_text("max_price_secs(25200)", at) == 22 * 3600 + 30 * 60  # clipped to now
    assert evaluate_text("CM._price <= min_price(25200)", at) == 0


def test_min_price_same_day_window_and_ties():
    at = env({}, "2026-06-04 01:10", prices=PRICES)
    assert evaluate_text("min_price(10800)", at) == 0.20  # until 03:00: 01:00 and 02:00 tie
    assert evaluate_text("min_price_secs(10800)", at) == 4200  # the earlier one (clipped to now)
    assert evaluate_text("min_price(25200)", at) == 0.10
    assert evaluate_text("min_price(43200)", at) == 0.05
    assert evaluate_text("min_price_secs(43200)", at) == 9 * 3600


def test_price_function_errors():
    with pytest.raises(FormulaError, match="no electricity prices"):
        evaluate_text("min_price(25200)", env())
    with pytest.raises(FormulaError, match="between 0 and 86400") as caught:
        evaluate_text("1 + max_price(-1)", env(prices=PRICES))
    assert caught.value.position == 4
