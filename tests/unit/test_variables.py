"""The variable store: validation, all-or-nothing updates, values, persistence, tmp."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energytree.errors import ConfigError, FormulaError, RequestError
from energytree.formula import Formula, MappingEnvironment
from energytree.persist import read_json, write_json_atomic
from energytree.variables import (
    LOCAL,
    MAX_VARIABLES,
    Origin,
    VariableStore,
    VariableView,
    items_from_json,
)

ENV = MappingEnvironment({"M1.current": 7000.0}, now=datetime(2026, 6, 3, 10, tzinfo=UTC))


@pytest.fixture
def path(tmp_path):
    return tmp_path / "variables.json"


@pytest.fixture
def store(path):
    store = VariableStore(path)
    store.load()
    return store


def reloaded(path) -> VariableStore:
    store = VariableStore(path)
    store.load()
    return store


def snapshot(store: VariableStore) -> list[VariableView]:
    return store.get_all(ENV)


def test_constants_and_formulas_with_values(store):
    store.set_many([("AVAIL", 60), ("TARIF", "1"), ("limit", "55000 * CM.AVAIL / 100")])
    assert snapshot(store) == [
        VariableView("AVAIL", 60, 60.0),
        VariableView("TARIF", 1, 1.0),
        VariableView("limit", "55000 * CM.AVAIL / 100", 33000.0),
    ]
    assert store.value("limit", ENV) == 33000
    assert store.names() == ["AVAIL", "TARIF", "limit"]


def test_bare_names_and_meters_resolve_through_the_store(store):
    store.set_many([("AVAIL", 50), ("half", "AVAIL / 100 * M1.current")])
    assert store.value("half", ENV) == 3500
    outer = store.environment(ENV)
    assert Formula.parse("cm.half + CM.AVAIL + M1.current").evaluate(outer) == 10550


def test_a_failing_formula_shows_its_error_without_hiding_the_others(store):
    store.set_many([("a", 1), ("broken", "1 / (a - 1)"), ("uses", "CM.broken + 1"), ("z", 2)])
    views = {view.name: view for view in snapshot(store)}
    assert views["a"].value == 1 and views["z"].value == 2
    assert views["broken"].value is None and "division by zero" in views["broken"].error
    assert views["uses"].value is None and "CM.broken" in views["uses"].error
    with pytest.raises(FormulaError):
        store.value("broken", ENV)


def test_a_long_chain_of_variables_evaluates_without_deep_recursion(store):
    chain = [("v0", 1)] + [(f"v{i}", f"CM.v{i - 1} + 1") for i in range(1, MAX_VARIABLES)]
    store.set_many(chain, persist=False)
    assert store.value(f"v{MAX_VARIABLES - 1}", ENV) == MAX_VARIABLES


@pytest.mark.parametrize(
    ("items", "error", "fragment"),
    [
        ([("1abc", 1)], RequestError, "invalid variable name"),
        ([("a.b", 1)], RequestError, "invalid variable name"),
        ([("x" * 65, 1)], RequestError, "invalid variable name"),
        ([("ok", 1), ("bad", "1 +")], FormulaError, "variable 'bad'"),
        ([("ok", 1), ("bad", float("nan"))], RequestError, "not a finite number"),
        ([("bad", math.inf)], RequestError, "not a finite number"),
        ([("bad", "nan")], RequestError, "not a finite number"),
        ([("bad", "-Infinity")], RequestError, "not a finite number"),
        ([("bad", 10**400)], RequestError, "too large"),
        ([("bad", True)], RequestError, "number or a formula"),
        ([("bad", None)], RequestError, "number or a formula"),
        ([("a", "CM.b"), ("b", "a + 1")], RequestError, "cycle: a → b → a"),
        ([("self", "self + 1")], RequestError, "cycle"),
        ([(f"v{i}", i) for i in range(MAX_VARIABLES + 1)], RequestError, "too many"),
    ],
)
def test_rejected_updates_change_nothing(store, path, items, error, fragment):
    store.set_many([("keep", 5), ("a", 1)])
    before, file_before = snapshot(store), path.read_bytes()
    with pytest.raises(error, match=re.escape(fragment)):
        store.set_many(items, clear=True)
    assert snapshot(store) == before
    assert path.read_bytes() == file_before


def test_cycle_with_existing_variables_is_rejected(store):
    store.set_many([("a", "CM.b + 1"), ("b", 1)])
    with pytest.raises(RequestError, match="cycle"):
        store.set_many([("b", "a * 2")])
    assert store.value("a", ENV) == 2


def test_clear_replaces_everything(store, path):
    store.set_many([("var1", 1), ("var3", 3)])
    store.set_many([("var1", 1.5), ("var2", 2)], clear=True)
    assert [(v.name, v.expr) for v in snapshot(store)] == [("var1", 1.5), ("var2", 2)]
    assert [(v.name, v.expr) for v in snapshot(reloaded(path))] == [("var1", 1.5), ("var2", 2)]


def test_persisted_changes_survive_a_restart(store, path):
    store.set_many([("AVAIL", 60), ("rule", "date.hour >= 8 ? CM.AVAIL : 0")])
    assert snapshot(reloaded(path)) == snapshot(store)
    assert read_json(path) == {
        "vars": [
            {"name": "AVAIL", "expr": 60},
            {"name": "rule", "expr": "date.hour >= 8 ? CM.AVAIL : 0"},
        ]
    }


def test_tmp_values_are_lost_on_restart_and_the_persisted_one_returns(store, path):
    store.set_many([("AVAIL", 60)])
    store.set_many([("AVAIL", 30), ("extra", 1)], persist=False)
    assert store.value("AVAIL", ENV) == 30
    store.set_many([("other", 7)])  # a later persisted change does not persist the tmp values
    again = reloaded(path)
    assert [(v.name, v.value) for v in snapshot(again)] == [("AVAIL", 60), ("other", 7)]


def test_clear_with_tmp_leaves_the_file_alone(store, path):
    store.set_many([("AVAIL", 60)])
    store.set_many([("x", 1)], clear=True, persist=False)
    assert store.names() == ["x"]
    assert reloaded(path).names() == ["AVAIL"]


def test_the_file_is_written_only_when_something_changed(store, path, monkeypatch):
    writes = []
    monkeypatch.setattr("energytree.variables.write_json_atomic", lambda p, o: writes.append(o))
    assert store.set_many([("AVAIL", 60)]) == {"AVAIL"}
    assert store.set_many([("AVAIL", "60")]) == frozenset()  # same value, written differently
    assert store.set_many([("AVAIL", 70)], persist=False) == {"AVAIL"}
    assert len(writes) == 1
    assert store.set_many([("AVAIL", 60)]) == {"AVAIL"}  # memory changes, the file does not
    assert len(writes) == 1


def test_subscribers_hear_about_changes_only(store):
    heard: list[tuple[frozenset[str], Origin]] = []
    unsubscribe = store.subscribe(lambda changed, origin: heard.append((changed, origin)))
    operator = Origin("http", "admin")
    store.set_many([("a", 1), ("b", 2)], origin=operator)
    store.set_many([("a", 1)])
    store.set_many([("c", 3)], clear=True)
    unsubscribe()
    store.set_many([("d", 4)])
    assert heard == [({"a", "b"}, operator), ({"a", "b", "c"}, LOCAL)]


def test_a_failing_subscriber_does_not_undo_the_change(store, caplog):
    store.subscribe(lambda changed, origin: 1 / 0)
    store.set_many([("a", 1)])
    assert store.names() == ["a"]
    assert "callback" in caplog.text


def test_write_failure_changes_nothing(store, path, monkeypatch):
    store.set_many([("a", 1)])

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr("energytree.variables.write_json_atomic", fail)
    with pytest.raises(OSError):
        store.set_many([("a", 2)])
    assert store.value("a", ENV) == 1


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"vars": [', "invalid JSON at line 1 column 11"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"vars": [{"name": "a", "expr": NaN}]}', "NaN is not a number"),
        (b'{"vars": {}}', "expected an object"),
        (b'{"vars": [{"name": "a"}]}', "vars[0]"),
        (b'{"vars": [{"name": "1a", "expr": 1}]}', "invalid variable name"),
        (b'{"vars": [{"name": "a", "expr": "1 +"}]}', "variable 'a'"),
        (b'{"vars": [{"name": "a", "expr": "b"}, {"name": "b", "expr": "a"}]}', "cycle"),
    ],
)
def test_a_corrupt_file_is_a_config_error_naming_it_and_empties_the_store(path, content, fragment):
    store = VariableStore(path)
    store.set_many([("old", 1)], persist=False)
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(fragment)) as caught:
        store.load()
    assert str(path) in str(caught.value)
    assert store.names() == []


def test_no_file_and_no_path_mean_no_variables(path):
    assert reloaded(path).names() == []
    memory_only = VariableStore()
    memory_only.load()
    memory_only.set_many([("a", 1)])
    assert memory_only.value("a", ENV) == 1
    with pytest.raises(RequestError, match="unknown variable"):
        memory_only.value("b", ENV)


def test_write_json_atomic_replaces_the_file_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "state.json"
    write_json_atomic(target, {"a": 1})
    write_json_atomic(target, {"a": [1.5, "x"]})
    assert json.loads(target.read_text()) == {"a": [1.5, "x"]}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
    with pytest.raises(ValueError):
        write_json_atomic(target, {"a": math.nan})
    assert json.loads(target.read_text()) == {"a": [1.5, "x"]}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
ENTRY = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["a", "b", "AVAIL"]), JSON), "expr": JSON},
)
BODY = st.one_of(JSON, st.fixed_dictionaries({"vars": st.lists(ENTRY, max_size=4)}))


@settings(max_examples=300)
@given(BODY, st.booleans(), st.booleans())
def test_any_json_body_is_applied_whole_or_rejected_with_our_errors(body, clear, persist):
    store = VariableStore()
    store.set_many([("a", 1), ("b", "CM.a + 1")])
    before = snapshot(store)
    try:
        store.set_many(items_from_json(body), clear=clear, persist=persist)
    except (RequestError, FormulaError):
        assert snapshot(store) == before
    else:
        for view in snapshot(store):
            assert view.value is None or math.isfinite(view.value)


# ---- the seed's spelling, predefined names and formulas that can never work ---------------------


def test_names_compare_case_insensitively_and_keep_the_last_spelling(store, path):
    store.set_many([("tarif", 1)])
    rule = Formula.parse("CM.TARIF == 1 ? 16000 : 6000")
    assert rule.evaluate(store.environment(ENV)) == 16000
    assert store.value("Tarif", ENV) == 1
    assert store.set_many([("TARIF", 1)]) == {"TARIF"}  # the spelling changed, the value not
    assert store.names() == ["TARIF"]
    assert read_json(path) == {"vars": [{"name": "TARIF", "expr": 1}]}


@pytest.mark.parametrize("name", ["_num_charging", "_PRICE", "_surplus", "_max_total_current"])
def test_predefined_read_only_variables_are_refused_by_name(store, name):
    with pytest.raises(RequestError, match=f"'{name}' is a predefined variable"):
        store.set_many([("a", 1), (name, 5)])
    assert store.names() == []


@pytest.mark.parametrize(("text", "position"), [
    ("9^9^9^9", 3), ("1/0", 1), ("10^400", 2), ("sqrt(-1)", 0), ("0/0", 1), ("1e308*10", 5),
])
def test_constant_formulas_that_cannot_be_evaluated_are_refused(store, text, position):
    with pytest.raises(FormulaError, match=f"at position {position}") as caught:
        store.set_many([("a", 1), ("AVAIL", text)])
    assert caught.value.position == position
    assert store.names() == []


@pytest.mark.parametrize("text", ["AVAIL2 / 0", "1 / date.hour", "min_price(3600)"])
def test_formulas_that_read_live_values_are_kept(store, text):
    store.set_many([("x", text)])
    assert store.names() == ["x"]


def test_a_failing_dependency_is_quoted_once_with_its_reason(store):
    store.set_many([("zero", 0), ("ratio", "1 / zero"), ("AVAIL", "CM.ratio + 1")])
    [*_, avail] = store.get_all(ENV)
    assert avail.error is not None
    assert avail.error.splitlines()[0] == "CM.ratio: division by zero at position 0"


def test_a_file_from_before_the_door_check_still_loads(path):
    write_json_atomic(path, {"vars": [{"name": "AVAIL", "expr": "1/0"},
                                      {"name": "_price", "expr": 0.3}]})
    store = VariableStore(path)
    store.load()
    avail, price = store.get_all(ENV)
    assert avail.value is None and avail.error.startswith("division by zero")
    assert price.value == 0.3
