"""``energytree plan``'s fast JSON is exactly what the pydantic ``EnforcedLimits`` dump."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import numpy as np
import pytest

from energytree.inputs import load_prices, load_request
from energytree.plan import floor_towards_zero, instant_plan
from energytree.planjson import _codes, enforced_limits_chunks, enforced_limits_json
from energytree.problem import build_problem
from optimizer import optimise
from tests.builders import EXAMPLES, NOW

REQUESTS = sorted((EXAMPLES / "requests").glob("*.json"))


@pytest.mark.parametrize("path", REQUESTS, ids=[p.stem for p in REQUESTS])
@pytest.mark.parametrize("planner", [optimise, instant_plan], ids=["optimiser", "instant"])
def test_the_fast_json_equals_the_model_dump(path, planner) -> None:
    prices = load_prices(EXAMPLES / "prices" / "tou-day.csv") if "home" in path.stem else []
    plan = planner(build_problem(load_request(path), NOW, prices=prices))
    until = NOW + timedelta(seconds=30)
    slow = [x.model_dump(mode="json", exclude_none=True)
            for x in plan.enforced_limits(until, 30)]
    assert json.loads(enforced_limits_json(plan, until, 30)) == slow


def _layout(limits: list[dict]) -> str:
    """The command's layout of dumped ``EnforcedLimits``: one EVSE a line, one entry a line."""
    lines = []
    for dumped in limits:
        schedule = dumped.pop("schedule")
        lines.append(json.dumps(dumped)[:-1] + ', "schedule": [\n  '
                     + ",\n  ".join(json.dumps(entry) for entry in schedule) + "]}")
    return "[\n" + ",\n".join(lines) + "\n]\n"


@pytest.mark.parametrize("path", REQUESTS, ids=[p.stem for p in REQUESTS])
def test_the_fast_json_is_byte_for_byte_the_layout(path) -> None:
    plan = optimise(build_problem(load_request(path), NOW))
    until = NOW + timedelta(seconds=30)
    slow = [x.model_dump(mode="json", exclude_none=True)
            for x in plan.enforced_limits(until, 30)]
    assert enforced_limits_json(plan, until, 30) == _layout(slow)


@pytest.mark.parametrize("cells", [1, 5, 10_000])
def test_chunks_are_whole_evses_of_the_same_text(cells) -> None:
    plan = optimise(build_problem(load_request(REQUESTS[0]), NOW))
    until = NOW + timedelta(seconds=30)
    chunks = list(enforced_limits_chunks(plan, until, 30, cells_per_chunk=cells))
    assert "".join(chunks) == enforced_limits_json(plan, until, 30)
    assert all(chunk.endswith("\n") for chunk in chunks)
    assert len(chunks) == 1 + (plan.problem.evse_count if cells < plan.problem.slots else 1)


@pytest.mark.parametrize("groups", [1, 2], ids=["alone", "with the slot"])
@pytest.mark.parametrize("scale", [1.0, 1e17], ids=["one key per entry", "too large a key"])
def test_equal_limits_share_a_code_and_only_they(scale, groups) -> None:
    amps = floor_towards_zero(np.array([0.0, -0.0, 6.004, 6.0, -6.0, 16.0, 6.0]) * scale, 2)
    watts = floor_towards_zero(np.array([0.0, 0.0, 4141.9, 4140.0, -4140.0, 11040.0,
                                         4140.0]) * scale, 1)
    phases = np.array([3, 3, 3, 3, 3, 3, 1])
    code, first = _codes(amps, phases, watts, groups)
    keys = [(*key, i % groups) for i, key in enumerate(zip(amps.tolist(), phases.tolist(),
                                                           watts.tolist(), strict=True))]
    for i, j in itertools.combinations(range(len(keys)), 2):
        assert (code[i] == code[j]) == (keys[i] == keys[j]), (i, j)
    assert sorted(code[first].tolist()) == list(range(len(first)))
