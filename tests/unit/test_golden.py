"""Golden cases: every file in ``tests/golden/`` is one test ("cases are files").

Each file holds a description, what EVerest gives and why we differ (``everest``), the request,
``now``, the slot grid and the expected ``EnforcedLimits`` of the instant plan: per EVSE in tree
order its ``limits_root_side``, optionally the whole ``schedule`` and the ``reason`` of slot 0.
Only the fields a case lists are compared; a failure prints a unified diff.
"""

from __future__ import annotations

import difflib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from energytree.plan import instant_plan
from energytree.problem import PlanOptions, build_problem
from energytree.types import EnergyFlowRequest, to_utc

CASES = sorted((Path(__file__).parents[1] / "golden").glob("*.json"))


def _actual(case: dict[str, Any]) -> list[dict[str, Any]]:
    now = to_utc(case["now"])
    options = PlanOptions(slot_s=case["slot_minutes"] * 60, horizon_s=case["horizon_hours"] * 3600)
    problem = build_problem(EnergyFlowRequest.model_validate(case["request"]), now, options)
    plan = instant_plan(problem, rotation=case.get("rotation", 0))
    limits = plan.enforced_limits(now + timedelta(seconds=10), 10)
    result = []
    for e, (x, want) in enumerate(zip(limits, case["expected"], strict=False)):
        fields = set(want["limits_root_side"])
        item: dict[str, Any] = {
            "uuid": x.uuid,
            "limits_root_side": x.limits_root_side.model_dump(mode="json", include=fields),
        }
        if "schedule" in want:
            item["schedule"] = [
                {"timestamp": s.model_dump(mode="json")["timestamp"],
                 **s.limits_to_root.model_dump(mode="json", include=fields)}
                for s in x.schedule
            ]
        if "reason" in want:
            item["reason"] = plan.reasons[e][0]
        result.append(item)
    result += [{"uuid": x.uuid, "unexpected": True} for x in limits[len(case["expected"]):]]
    return result


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    assert case["description"] and case["everest"], "say what the case shows and what EVerest does"
    actual = _actual(case)
    if actual != case["expected"]:
        diff = difflib.unified_diff(
            json.dumps(case["expected"], indent=1, sort_keys=True).splitlines(),
            json.dumps(actual, indent=1, sort_keys=True).splitlines(),
            "expected", "actual", lineterm="",
        )
        pytest.fail(f"{path.name}: {case['description']}\n" + "\n".join(diff), pytrace=False)


def test_there_are_cases() -> None:
    assert len(CASES) >= 10
