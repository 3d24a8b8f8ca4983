"""Every key of the site file is documented in docs/site-file.md."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from pydantic import BaseModel

from energytree.app.service import ServiceConfig

DOC = (Path(__file__).resolve().parents[2] / "docs" / "site-file.md").read_text(encoding="utf-8")


def _models(annotation: object) -> list[type[BaseModel]]:
    """The models an annotation refers to (through unions, lists and dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _keys(model: type[BaseModel], path: str, seen: frozenset[type]) -> list[tuple[str, str]]:
    found = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        found.append((f"{path}{key}", key))
        for inner in _models(field.annotation):
            if inner not in seen:
                found += _keys(inner, f"{path}{key}.", seen | {inner})
    return found


def _documented(key: str) -> bool:
    """Named in backticks (``key`` or ``key: value``) or in a ``{...}`` list (``key (default)``)."""
    return re.search(rf"`{re.escape(key)}[`:]|[{{,]\s*{re.escape(key)}\s*[,:}}(]", DOC) is not None


def test_every_site_file_key_is_documented() -> None:
    keys = _keys(ServiceConfig, "", frozenset({ServiceConfig}))
    assert len(keys) > 100
    missing = [path for path, key in keys if not _documented(key)]
    assert missing == [], f"document these keys in docs/site-file.md: {missing}"
