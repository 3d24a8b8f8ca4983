"""Read the JSON and CSV inputs of the command line: requests, price files, target files.

Each reader turns every problem (unreadable file, bad JSON, a field that fails validation)
into a ``RequestError`` whose message names the file and the line or field.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from energytree import strictjson
from energytree.errors import RequestError
from energytree.types import EnergyFlowRequest, OptimizerTarget, PricePerKwh

__all__ = [
    "describe_validation_error",
    "load_prices",
    "load_request",
    "load_targets",
    "parse_request",
    "validate_json",
]

MAX_INPUT_BYTES = 20_000_000
Model = TypeVar("Model", bound=BaseModel)


def describe_validation_error(exc: ValidationError, name: str) -> str:
    """One line per problem: ``name: field.path: message``."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        lines.append(f"{name}: {where}: {error['msg']}")
    return "\n".join(lines)


def _read(path: str | Path) -> str:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_INPUT_BYTES:
            raise RequestError(f"{path}: larger than {MAX_INPUT_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RequestError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise RequestError(f"{path}: not UTF-8 text") from exc


def parse_json(text: str, name: str) -> Any:
    """Strict JSON: NaN and Infinity are rejected, errors give line and column."""
    try:
        return strictjson.loads(text)
    except strictjson.JsonProblem as exc:
        if exc.line is not None:
            raise RequestError(f"{name}:{exc.line}:{exc.column}: invalid JSON: {exc.reason}"
                               ) from exc
        raise RequestError(f"{name}: {exc}") from exc


def validate_json(model: type[Model], text: str) -> Model | None:
    """``text`` validated by pydantic's own JSON parser (faster than ``json`` followed by
    validating its objects), or None where the strict path must decide: pydantic refuses the
    text, or it holds ``NaN`` or ``Infinity``, which pydantic would let through where a value
    is dropped (an extra field, a number's source). Errors are always the strict path's."""
    if "NaN" in text or "Infinity" in text:
        return None
    try:
        return model.model_validate_json(text)
    except ValidationError:
        return None


def parse_request(text: str, name: str = "<request>") -> EnergyFlowRequest:
    fast = validate_json(EnergyFlowRequest, text)
    if fast is not None:
        return fast
    data = parse_json(text, name)
    try:
        return EnergyFlowRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestError(describe_validation_error(exc, name)) from exc


def load_request(path: str | Path) -> EnergyFlowRequest:
    """An EnergyFlowRequest from a JSON file."""
    return parse_request(_read(path), str(path))


def load_prices(path: str | Path) -> list[PricePerKwh]:
    """Prices from JSON (a list of ``{timestamp, value[, currency]}``) or CSV.

    The CSV has a header with ``timestamp`` and ``value`` (optionally ``currency``) columns.
    """
    path = Path(path)
    text = _read(path)
    name = str(path)
    if path.suffix.lower() == ".csv":
        rows: Any = list(csv.DictReader(io.StringIO(text)))
        for row in rows:
            if "timestamp" not in row or "value" not in row:
                raise RequestError(f"{name}: the CSV needs 'timestamp' and 'value' columns")
            if not row.get("currency"):
                row.pop("currency", None)
    else:
        rows = parse_json(text, name)
        if isinstance(rows, dict) and "prices" in rows:
            rows = rows["prices"]
    try:
        prices = TypeAdapter(list[PricePerKwh]).validate_python(rows)
    except ValidationError as exc:
        raise RequestError(describe_validation_error(exc, name)) from exc
    if not prices:
        raise RequestError(f"{name}: no prices in the file")
    return sorted(prices, key=lambda p: p.timestamp)


def load_targets(path: str | Path) -> dict[str, OptimizerTarget]:
    """Targets per EVSE uuid from JSON: ``{"evse-uuid": {OptimizerTarget fields}, …}``."""
    name = str(path)
    data = parse_json(_read(path), name)
    try:
        return TypeAdapter(dict[str, OptimizerTarget]).validate_python(data)
    except ValidationError as exc:
        raise RequestError(describe_validation_error(exc, name)) from exc
