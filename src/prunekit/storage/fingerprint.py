"""Short stable hashes of configs and files (run folders, point ids, checkpoint identities).

Example:
    >>> fingerprint({"b": 1, "a": [1, 2]}) == fingerprint({"a": [1, 2], "b": 1})
    True
    >>> len(fingerprint("x"))
    12
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..errors import CheckpointError


def fingerprint(data: Any) -> str:
    """A 12-hex-digit sha256 of JSON-able ``data`` (keys sorted)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def file_digest(path: str | os.PathLike, length: int = 12) -> str:
    """The first ``length`` hex digits of the sha256 of a file's bytes (read in chunks)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise CheckpointError(f"cannot read {Path(path)}: {exc.strerror or exc}") from None
    return digest.hexdigest()[:length]
