"""State that must survive a restart: JSON files written atomically.

A reader sees the old file or the new one, never a torn mix, even after a power cut: the data
goes to a temporary file in the same directory, is flushed to disk, renamed over the target,
and the directory entry itself is flushed.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from energytree import strictjson
from energytree.errors import ConfigError

__all__ = ["read_json", "write_json_atomic"]


def write_json_atomic(path: Path, obj: object) -> None:
    """Replace `path` with `obj` as JSON (no NaN/Infinity), atomically and durably."""
    data = json.dumps(obj, indent=2, allow_nan=False).encode("utf-8") + b"\n"
    directory = path.parent
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; platforms that cannot open a directory skip this."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # the file is already in place; this is best effort
            os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path) -> object | None:
    """The JSON in `path`, or None if there is no such file; ConfigError if it is corrupt."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return strictjson.loads(data)
    except strictjson.JsonProblem as exc:
        raise ConfigError(f"{path}: {exc}") from exc
