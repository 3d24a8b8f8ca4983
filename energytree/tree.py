"""The energy tree: nodes in depth-first order, with every node's EVSEs in one contiguous range.

Because a depth-first walk visits a subtree's EVSEs one after another, "everything below node
n" is the EVSE index range ``[lo, hi)``; sums over a subtree are differences of a prefix sum.
That keeps both the allocator and the optimiser's model build vectorised.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from energytree.errors import NotFoundError, RequestError
from energytree.types import EnergyFlowRequest, EnforcedLimits, NodeType

__all__ = ["MAX_DEPTH", "MAX_NODES", "Node", "Tree"]

MAX_DEPTH = 32
MAX_NODES = 20_000


@dataclass(frozen=True)
class Node:
    """One node: its request, where it sits, and which EVSEs are below it."""

    index: int
    request: EnergyFlowRequest
    parent: int
    depth: int
    evse_lo: int
    evse_hi: int

    @property
    def uuid(self) -> str:
        return self.request.uuid

    @property
    def is_evse(self) -> bool:
        return self.request.node_type == NodeType.Evse


class Tree:
    """An immutable, flattened view of an ``EnergyFlowRequest``.

    >>> tree = Tree.from_request(request)
    >>> tree.evses[0].uuid, tree.path(0)   # the first EVSE and its nodes from the root
    """

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.evses = [n for n in nodes if n.is_evse]
        self._by_uuid = {n.uuid: n for n in nodes}

    @classmethod
    def from_request(cls, root: EnergyFlowRequest) -> Tree:
        nodes: list[Node | None] = []
        evse_count = 0
        seen: set[str] = set()

        def visit(request: EnergyFlowRequest, parent: int, depth: int) -> None:
            nonlocal evse_count
            if depth > MAX_DEPTH:
                raise RequestError(f"the tree is deeper than {MAX_DEPTH} levels")
            if len(nodes) >= MAX_NODES:
                raise RequestError(f"the tree has more than {MAX_NODES} nodes")
            if request.uuid in seen:
                raise RequestError(f"uuid {request.uuid!r} appears twice in the tree")
            seen.add(request.uuid)
            if request.node_type == NodeType.Evse and request.children:
                raise RequestError(f"EVSE {request.uuid!r} has children; EVSEs must be leaves")
            index = len(nodes)
            lo = evse_count
            nodes.append(None)  # its place; the node is made once its EVSE range is known
            if request.node_type == NodeType.Evse:
                evse_count += 1
            for child in request.children:
                visit(child, index, depth + 1)
            nodes[index] = Node(index, request, parent, depth, lo, evse_count)

        visit(root, -1, 0)
        return cls([node for node in nodes if node is not None])

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, uuid: str) -> Node:
        try:
            return self._by_uuid[uuid]
        except KeyError:
            raise NotFoundError(f"no node with uuid {uuid!r} in the tree") from None

    def evse_index(self, uuid: str) -> int:
        """Position of an EVSE in tree order."""
        node = self.node(uuid)
        if not node.is_evse:
            raise NotFoundError(f"node {uuid!r} is not an EVSE")
        return node.evse_lo

    def path(self, evse: int) -> list[Node]:
        """The nodes from the root down to EVSE number ``evse`` (inclusive)."""
        node = self.evses[evse]
        path = [node]
        while node.parent >= 0:
            node = self.nodes[node.parent]
            path.append(node)
        return path[::-1]

    @cached_property
    def evse_nodes(self) -> np.ndarray:
        """[N] the EVSEs' node indices."""
        return np.array([n.index for n in self.evses], dtype=np.int64)

    @cached_property
    def evse_paths(self) -> np.ndarray:
        """[N, D] ``path(e)`` of every EVSE as node indices, column ``d`` at depth ``d``; a
        path shorter than the deepest ends in -1 (built level by level, not node by node)."""
        parent = np.array([n.parent for n in self.nodes], dtype=np.int64)
        depth = np.array([n.depth for n in self.nodes], dtype=np.int64)
        node = self.evse_nodes
        paths = np.full((len(node), int(depth[node].max(initial=0)) + 1), -1, dtype=np.int64)
        rows = np.arange(len(node))
        while len(node):
            paths[rows, depth[node]] = node
            up = parent[node] >= 0
            rows, node = rows[up], parent[node[up]]
        return paths

    def route(self, limits: EnforcedLimits) -> Node:
        """The one leaf an ``EnforcedLimits`` is for (no broadcast down the tree)."""
        node = self.node(limits.uuid)
        if not node.is_evse:
            raise NotFoundError(f"limits for {limits.uuid!r}, which is not an EVSE leaf")
        return node

    def inner_nodes(self) -> list[Node]:
        """Nodes that constrain a group of EVSEs (everything but the EVSE leaves)."""
        return [n for n in self.nodes if not n.is_evse]


def subtree_sums(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sum of per-EVSE ``values`` ([N] or [N, 3]) over each node's EVSE range ``[lo, hi)``."""
    zero = np.zeros((1, *values.shape[1:]))
    cum = np.concatenate([zero, np.cumsum(values, axis=0)])
    return cum[hi] - cum[lo]
