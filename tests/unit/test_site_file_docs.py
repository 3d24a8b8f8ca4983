"""docs/site-file.md's reference is the site-file model's, and every key says what it means."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from energytree.app.service import ServiceConfig
from energytree.app.sitedocs import BEGIN, END, reference, with_reference

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "site-file.md"


def _models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def test_the_reference_in_the_docs_is_written_from_the_model() -> None:
    document = DOC_PATH.read_text(encoding="utf-8")
    assert with_reference(document, ServiceConfig) == document, (
        "docs/site-file.md is stale: run python -m energytree.app.sitedocs docs/site-file.md")


def test_every_key_of_the_site_file_says_what_it_means() -> None:
    seen: set[type[BaseModel]] = {ServiceConfig}
    queue: list[type[BaseModel]] = [ServiceConfig]
    silent = []
    while queue:
        model = queue.pop()
        for name, field in model.model_fields.items():
            if not field.description:
                silent.append(f"{model.__name__}.{name}")
            for inner in _models(field.annotation):
                if inner not in seen:
                    seen.add(inner)
                    queue.append(inner)
    assert len(seen) > 20
    assert silent == [], f"give these fields a description: {silent}"


class _Car(BaseModel):
    """A car."""

    battery_kWh: float = Field(60.0, gt=0, description="[kWh]")


class _Site(BaseModel):
    """A site."""

    cars: dict[str, _Car] = Field(default_factory=dict, description="by uuid")
    fleet: list[_Car] = Field(default_factory=list, description="the same model again")
    mode: typing.Literal["a", "b"] = Field("a", description="how")


def test_a_model_gets_one_table_with_types_bounds_and_defaults() -> None:
    text = reference(_Site)
    assert "### `cars.*`\n\nA car." in text
    assert "| `battery_kWh` | number, > 0 | `60` | [kWh] |" in text
    assert "| `fleet` | list of [`cars.*`](#cars) | `[]` | the same model again |" in text
    assert "| `mode` | `a` or `b` | `a` | how |" in text
    assert text.count("###") == 2


def test_a_document_without_the_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        with_reference("# no markers", _Site)
    assert with_reference(f"head\n{BEGIN}\nold\n{END}\ntail", _Site).startswith(f"head\n{BEGIN}")
