"""The site file's reference, written from its model: ``python -m energytree.app.sitedocs``.

``docs/site-file.md`` keeps its prose by hand; the part between ``BEGIN`` and ``END`` is this
module's output, and a test fails when the two differ. Each model gets one table (key, type,
default, meaning) at the first place it appears; a model met again points to that table.
"""

from __future__ import annotations

import enum
import re
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = ["BEGIN", "END", "reference", "with_reference"]

BEGIN = ("<!-- reference: written from the site-file model by "
         "`python -m energytree.app.sitedocs docs/site-file.md`; do not edit by hand -->")
END = "<!-- end of the reference -->"
_BOUNDS = ((annotated_types.Ge, "≥"), (annotated_types.Gt, ">"), (annotated_types.Le, "≤"),
           (annotated_types.Lt, "<"))


def reference(root: type[BaseModel]) -> str:
    """Markdown tables for ``root`` and every model it contains, in the order they appear."""
    anchors = {root: "top level"}
    parts = []
    for model in _models(root, anchors):
        title = "The top level" if model is root else f"`{anchors[model]}`"
        doc = _first_paragraph(model.__doc__)
        parts.append(f"### {title}\n\n" + (f"{doc}\n\n" if doc else "")
                     + _table(model, anchors))
    return "\n\n".join(parts) + "\n"


def with_reference(document: str, root: type[BaseModel]) -> str:
    """``document`` with the part between the markers replaced by a fresh reference."""
    head, found, rest = document.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not found or not found_end:
        raise ValueError(f"the document needs the markers {BEGIN!r} and {END!r}")
    return f"{head}{BEGIN}\n\n{reference(root)}\n{END}{tail}"


def _models(root: type[BaseModel], anchors: dict[type, str]) -> Iterator[type[BaseModel]]:
    """``root`` and each model inside it, breadth first, each once; ``anchors`` gets where
    each model is in the site file before the model holding it is yielded."""
    queue: list[tuple[str, type[BaseModel]]] = [("", root)]
    while queue:
        path, model = queue.pop(0)
        for name, field in model.model_fields.items():
            key = f"{path}.{_key(name, field)}" if path else _key(name, field)
            key += "[]" if _is_list(field.annotation) else ""
            key += ".*" if _is_dict(field.annotation) else ""
            inner_models = _inner_models(field.annotation)
            for inner in inner_models:
                if inner not in anchors:
                    anchors[inner] = _told_apart(key, inner) if len(inner_models) > 1 else key
                    queue.append((key, inner))
        yield model


def _told_apart(key: str, model: type[BaseModel]) -> str:
    """One of several models at one key (an EVSE or a fuse as a child), by the field that
    tells them apart: the model's first required one."""
    required = next(n for n, f in model.model_fields.items() if f.is_required())
    return f"{key} with {required}"


def _table(model: type[BaseModel], anchors: dict[type, str]) -> str:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{_key(name, field)}` | {_type(field, anchors)} | "
                    f"{_default(field)} | {meaning} |")
    return "\n".join(rows)


def _type(field: FieldInfo, anchors: dict[type, str]) -> str:
    bounds = [f"{sign} {_yaml(getattr(m, type(m).__name__.lower()))}" for m in field.metadata
              for kind, sign in _BOUNDS if isinstance(m, kind)]
    return _annotation(field.annotation, anchors) + (f", {' and '.join(bounds)}" if bounds else "")


def _annotation(annotation: Any, anchors: dict[type, str]) -> str:
    """A reader's name for a type: models by where their table is, literals by value."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _annotation(args[0], anchors)
    if origin in (typing.Union, types.UnionType):
        named = [_annotation(a, anchors) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(named))
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (list, set, frozenset):
        return f"{'list' if origin is list else 'set'} of {_annotation(args[0], anchors)}"
    if origin is dict:
        return f"map {_annotation(args[0], anchors)} → {_annotation(args[1], anchors)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _link(anchors.get(annotation, annotation.__name__))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " or ".join(f"`{m.value}`" for m in annotation)
    names = {float: "number", int: "integer", str: "text", bool: "true/false",
             Path: "file path", SecretStr: "secret text"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _link(title: str) -> str:
    """A link to the table titled ``title`` (the heading's anchor as Markdown renderers make
    it: lower case, punctuation dropped, spaces as hyphens)."""
    slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
    return f"[`{title}`](#{slug})"


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        return "its defaults" if isinstance(value, BaseModel) else f"`{_yaml(value)}`"
    if field.default is PydanticUndefined:
        return "required"
    if isinstance(field.default, BaseModel):  # only what differs from the model's defaults
        changed = field.default.model_dump(mode="json", exclude_defaults=True, by_alias=True)
        return f"`{_yaml(changed)}`" if changed else "its defaults"
    return "none" if field.default is None else f"`{_yaml(field.default)}`"


def _yaml(value: object) -> str:
    """How the value is written in the site file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_yaml(k)}: {_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, frozenset | set):
        return "[" + ", ".join(sorted(_yaml(v) for v in value)) + "]"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return str(value) if value != "" else '""'


def _key(name: str, field: FieldInfo) -> str:
    return field.alias or name


def _inner_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _inner_models(arg)]


def _is_list(annotation: Any) -> bool:
    if typing.get_origin(annotation) is list:
        return True
    return any(_is_list(a) for a in typing.get_args(annotation))


def _is_dict(annotation: Any) -> bool:
    if typing.get_origin(annotation) is dict:
        return True
    return any(_is_dict(a) for a in typing.get_args(annotation))


def _first_paragraph(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def main(argv: list[str]) -> int:
    """Rewrite the reference in the given Markdown file (default: print it)."""
    from energytree.app.service import ServiceConfig

    if not argv:
        sys.stdout.write(reference(ServiceConfig))
        return 0
    path = Path(argv[0])
    path.write_text(with_reference(path.read_text(encoding="utf-8"), ServiceConfig),
                    encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
