"""The layers hold: core ← optimizer ← adapters ← edge, and nothing imports upwards.

* the core (``energytree``, without ``energytree.app``) imports nothing from ``optimizer``,
  ``adapters`` or ``energytree.app``;
* the optimiser nothing from ``adapters`` or ``energytree.app``;
* the adapters nothing from ``energytree.app``.

Every import counts, also one inside a function or under ``TYPE_CHECKING``; since every
import points downwards, no two packages import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "core": ("optimizer", "adapters", "energytree.app"),
    "optimizer": ("adapters", "energytree.app"),
    "adapters": ("energytree.app",),
}


def layer(path: Path) -> str | None:
    parts = path.relative_to(ROOT).parts
    if parts[0] == "energytree":  # ``python -m energytree`` starts the edge
        return None if parts[1] in ("app", "__main__.py") else "core"
    if parts[0] == "adapters":
        return None if parts[1:3] == ("grpc", "gen") else "adapters"
    return "optimizer" if parts[0] == "optimizer" else None


def imported(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def test_no_layer_imports_upwards() -> None:
    found = set()
    for path in sorted(ROOT.glob("*/**/*.py")):
        which = layer(path)
        if which is None:
            continue
        for name in imported(ast.parse(path.read_text(encoding="utf-8"))):
            if any(name == bad or name.startswith(f"{bad}.") for bad in FORBIDDEN[which]):
                found.add((str(path.relative_to(ROOT)), name))
    assert found == set(), "imports that break the layers"
