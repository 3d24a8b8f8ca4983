"""Load YAML configuration and validate it with pydantic, reporting errors by line number."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from energytree.errors import ConfigError

__all__ = ["load_model", "parse_model"]

Model = TypeVar("Model", bound=BaseModel)
MAX_FILE_BYTES = 2_000_000


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at pydantic location ``loc`` (or its nearest parent)."""
    node, line = root, None
    for i, key in enumerate(loc):
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            keys = [k.value for k, _ in node.value]
            if i + 1 < len(loc) and loc[i + 1] in keys:
                continue  # a union tag that is also a key ('evse: a'): the field is a sibling
            node = next((v for k, v in node.value if k.value == key), None)
            if node is None:  # a missing field: point at the mapping
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            node = node.value[key] if key < len(node.value) else None
        else:
            continue  # pydantic's union tags are not YAML keys
    return node.start_mark.line + 1 if node is not None else line


def _describe(exc: ValidationError, root: yaml.Node | None, name: str) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        where = ".".join(str(p) for p in loc if not str(p).startswith("function-"))
        line = _line_of(root, loc)
        prefix = f"{name}:{line}" if line else name
        message = error["msg"].removeprefix("Value error, ")  # our own validators' messages
        lines.append(f"{prefix}: {where or '(top level)'}: {message}")
    return "\n".join(lines)


def parse_model(text: str, model: type[Model], name: str = "<config>") -> Model:
    """Parse YAML text into ``model``; every problem is reported as ``name:line: field: msg``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"{where}: not valid YAML: {problem}") from exc
    if data is None:
        raise ConfigError(f"{name}: the file is empty")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, root, name)) from exc


def load_model(path: str | Path, model: type[Model]) -> Model:
    """Read and validate a YAML file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text") from exc
    return parse_model(text, model, str(path))
