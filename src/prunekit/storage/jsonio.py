"""JSON files: read with errors that name the file, write atomically, check structure.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "config.json"
    >>> write_json(path, {"model": {"name": "mlp"}})
    >>> require(read_json(path), "model", dict, where=path)
    {'name': 'mlp'}
    >>> require({"epochs": "five"}, "epochs", (int, float), where="config.json")
    Traceback (most recent call last):
    ...
    prunekit.errors.CheckpointError: config.json: 'epochs' must be int or float, got str 'five'
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from .atomic import atomic_write_text
from .reading import read_bytes

MAX_JSON_BYTES = 64 << 20
"""JSON files larger than this are refused (configs and metrics are a few kB)."""

_MISSING = object()


def jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it: tuples as lists, keys as strings, NaN and infinities as ``None``."""
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (tuples become lists, NaN/inf become null)."""
    atomic_write_text(path, json.dumps(jsonable(data), indent=2) + "\n")


def read_json(path: str | os.PathLike, *, error: type[Exception] = CheckpointError) -> Any:
    """Read a JSON file.

    Raises:
        CheckpointError (or ``error``): naming the file when it is missing, a folder, unreadable,
            too large, not UTF-8, not JSON, or nested too deeply.
    """
    path = Path(path)
    return parse_json(read_bytes(path, "a prunekit JSON file", error=error, max_bytes=MAX_JSON_BYTES), path,
                      error=error)


def parse_json(data: bytes, path: str | os.PathLike, *, error: type[Exception] = CheckpointError) -> Any:
    """The JSON document in ``data``, read from ``path`` (named in the errors, as for :func:`read_json`)."""
    if len(data) > MAX_JSON_BYTES:
        raise error(f"{path} is {len(data):,} bytes, too large for a prunekit JSON file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path} is not valid JSON (not UTF-8 text: {exc.reason})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path} is not valid JSON ({exc})") from None
    except RecursionError:
        raise error(f"{path} is nested too deeply to be a prunekit JSON file") from None


def _type_names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in types)


def require(data: Any, key: str, types, *, where: Any, default: Any = _MISSING,
            error: type[Exception] = CheckpointError) -> Any:
    """``data[key]`` checked to be of ``types``; ``default`` if absent (when given), else an error.

    ``bool`` is not accepted where ``int``/``float`` is asked for; ``None`` is accepted when the
    default is ``None``.

    Raises:
        CheckpointError (or ``error``): naming ``where``, the key, the expected and the actual type.
    """
    if not isinstance(data, dict):
        raise error(f"{where}: expected a JSON object holding {key!r}, got {type(data).__name__}")
    if key not in data:
        if default is _MISSING:
            raise error(f"{where}: {key!r} is missing")
        return default
    value = data[key]
    if value is None and default is None:
        return None
    wanted = types if isinstance(types, tuple) else (types,)
    numeric = any(t in (int, float) for t in wanted) and bool not in wanted
    if not isinstance(value, wanted) or (numeric and isinstance(value, bool)):
        shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
        raise error(f"{where}: {key!r} must be {_type_names(types)}, got {type(value).__name__} {shown}")
    return value
