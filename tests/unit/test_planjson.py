"""``energytree plan``'s fast JSON is exactly what the pydantic ``EnforcedLimits`` dump."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from energytree.inputs import load_prices, load_request
from energytree.plan import instant_plan
from energytree.planjson import enforced_limits_json
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
