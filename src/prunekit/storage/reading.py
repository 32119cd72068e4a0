"""Reading a whole file with errors that name it and say what is wrong.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> read_bytes(folder, "a data file")
    Traceback (most recent call last):
    ...
    prunekit.errors.DataError: ... is a folder; expected a data file
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError


def read_bytes(path: str | os.PathLike, what: str, *, error: type[Exception] = DataError,
               max_bytes: int | None = None) -> bytes:
    """The whole content of ``path``.

    Args:
        path: the file.
        what: what the file should be, for the messages (e.g. ``"a JSON file"``).
        error: the exception type to raise.
        max_bytes: refuse larger files (before reading them).

    Raises:
        ``error``: naming the file when it is missing, a folder, unreadable or too large.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise error(f"{path} is a folder; expected {what}")
        if path.exists() and not os.access(path, os.R_OK):
            raise PermissionError
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise error(f"{path} is {path.stat().st_size:,} bytes, too large for {what}")
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path} does not exist; expected {what}") from None
    except PermissionError:
        raise error(f"{path} exists but cannot be read (permission denied)") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
