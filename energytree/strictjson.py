"""Strict JSON for everything we read: NaN and Infinity are refused, and errors say where.

Python's ``json`` accepts ``NaN`` and ``Infinity``, which no limit, price or variable may be;
every input (site state files, request files, HTTP bodies) goes through ``loads`` instead, and
each caller adds what was being read (a file name, "the body").
"""

from __future__ import annotations

import json

__all__ = ["JsonProblem", "loads"]


class JsonProblem(ValueError):
    """Not strict JSON; ``line``, ``column`` and the parser's ``reason``, when it knows where."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None,
                 reason: str = "") -> None:
        super().__init__(message)
        self.line, self.column, self.reason = line, column, reason or message


def loads(data: bytes | str) -> object:
    """The JSON value in ``data`` (UTF-8 if bytes); JsonProblem if it is not strict JSON."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise JsonProblem(f"not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise JsonProblem(f"invalid JSON at line {exc.lineno} column {exc.colno} "
                          f"(char {exc.pos}): {exc.msg}", exc.lineno, exc.colno, exc.msg) from None
    except RecursionError:
        raise JsonProblem("invalid JSON: nested too deeply") from None
    except JsonProblem:
        raise
    except ValueError as exc:  # e.g. an integer beyond Python's 4300-digit conversion limit
        raise JsonProblem(f"invalid JSON: {exc}") from None


def _refuse_constant(token: str) -> object:
    raise JsonProblem(f"{token} is not a number: numbers must be finite")
