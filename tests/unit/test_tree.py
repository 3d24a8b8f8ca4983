"""The flattened tree: depth-first order, EVSE ranges, paths, routing of EnforcedLimits."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from energytree.errors import NotFoundError, RequestError
from energytree.tree import MAX_DEPTH, Tree, subtree_sums
from energytree.types import EnergyFlowRequest, EnforcedLimits
from tests.builders import NOW, evse, node


def _tree() -> Tree:
    return Tree.from_request(
        node(
            "grid",
            node("left", evse("a"), evse("b")),
            evse("c"),
            node("right", node("deep", evse("d")), node("empty")),
        )
    )


def test_depth_first_order_and_evse_ranges() -> None:
    tree = _tree()
    assert [n.uuid for n in tree] == ["grid", "left", "a", "b", "c", "right", "deep", "d",
                                      "empty"]
    assert [e.uuid for e in tree.evses] == ["a", "b", "c", "d"]
    ranges = {n.uuid: (n.evse_lo, n.evse_hi) for n in tree}
    assert ranges["grid"] == (0, 4)
    assert ranges["left"] == (0, 2)
    assert ranges["c"] == (2, 3)
    assert ranges["right"] == (3, 4)
    assert ranges["empty"] == (4, 4)
    assert [n.uuid for n in tree.inner_nodes()] == ["grid", "left", "right", "deep", "empty"]
    assert tree.root.uuid == "grid" and len(tree) == 9


def test_path_from_root_to_evse() -> None:
    tree = _tree()
    assert [n.uuid for n in tree.path(3)] == ["grid", "right", "deep", "d"]
    assert [n.uuid for n in tree.path(2)] == ["grid", "c"]
    assert [n.depth for n in tree.path(3)] == [0, 1, 2, 3]


def test_lookup_by_uuid() -> None:
    tree = _tree()
    assert tree.evse_index("d") == 3
    with pytest.raises(NotFoundError, match="nope"):
        tree.node("nope")
    with pytest.raises(NotFoundError, match="not an EVSE"):
        tree.evse_index("left")


def _limits(uuid: str) -> EnforcedLimits:
    return EnforcedLimits(uuid=uuid, valid_until=NOW, schedule=[])


def test_enforced_limits_go_to_the_matching_leaf_only() -> None:
    assert _tree().route(_limits("b")).uuid == "b"


@pytest.mark.parametrize("uuid", ["unknown", "left", "grid"])
def test_enforced_limits_for_unknown_or_non_evse_uuids_are_rejected(uuid) -> None:
    with pytest.raises(NotFoundError):
        _tree().route(_limits(uuid))


def test_evse_with_children_is_rejected() -> None:
    parent = evse("a").model_copy(update={"children": [evse("b")]})
    with pytest.raises(RequestError, match="EVSEs must be leaves"):
        Tree.from_request(node("grid", parent))


def test_duplicate_uuids_are_rejected() -> None:
    with pytest.raises(RequestError, match="appears twice"):
        Tree.from_request(node("grid", node("x", evse("a")), node("y", evse("a"))))
    with pytest.raises(ValidationError, match="duplicate child uuid"):
        node("grid", evse("a"), evse("a"))


def test_too_deep_trees_are_rejected() -> None:
    request: EnergyFlowRequest = evse("leaf")
    for depth in range(MAX_DEPTH + 1):
        request = node(f"n{depth}", request)
    with pytest.raises(RequestError, match="deeper"):
        Tree.from_request(request)


def test_subtree_sums() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0])
    lo, hi = np.array([0, 0, 2, 4]), np.array([4, 2, 3, 4])
    assert subtree_sums(values, lo, hi).tolist() == [10, 3, 3, 0]
    per_phase = np.arange(12, dtype=float).reshape(4, 3)
    assert subtree_sums(per_phase, lo[:2], hi[:2]).tolist() == [[18, 22, 26], [3, 5, 7]]
