"""Folders a command writes file by file (a sweep, a sensitivity analysis), beside files of the user's.

Such a folder may hold anything else, but a command never overwrites a file it did not write: before
any work, :func:`claim_output` refuses a folder that holds one of the names the command writes unless
the folder is marked as that command's (``.prunekit-output.json``, written by :func:`mark_output` when
the first run starts writing, so a rerun resumes and replaces its own tables). Folders written before
the mark existed are recognised by an entry only that command makes (a sweep's ``points/``).

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "REPORT.md").write_text("my own report")
    >>> claim_output(folder, "sweep", ("REPORT.md", "results.*"))
    Traceback (most recent call last):
    ...
    prunekit.errors.OutputError: output folder ... holds REPORT.md, which prunekit sweep writes but did not write there; ...
    >>> claim_output(folder / "new", "sweep", ("REPORT.md",))
    >>> mark_output(folder / "new", "sweep")
    >>> sorted(p.name for p in (folder / "new").iterdir())
    ['.prunekit-output.json']
    >>> _ = (folder / "new" / "REPORT.md").write_text("the sweep's report")
    >>> claim_output(folder / "new", "sweep", ("REPORT.md",))  # a rerun replaces its own files
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Sequence

from ..errors import OutputError
from .atomic import _some, atomic_write_text

OUTPUT_MARKER = ".prunekit-output.json"


def _commands(folder: Path) -> list[str]:
    """The commands whose output ``folder`` is marked as."""
    try:
        mark = json.loads((folder / OUTPUT_MARKER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return []
    commands = mark.get("commands") if isinstance(mark, dict) else None
    return [c for c in commands if isinstance(c, str)] if isinstance(commands, list) else []


def claim_output(path: str | os.PathLike, command: str, writes: Sequence[str], *, earlier: str | None = None) -> None:
    """Refuse ``path`` if it holds a name ``command`` writes (fnmatch ``writes``) that it did not write there
    (call it before any work; :func:`mark_output` when the command starts writing).

    Args:
        path: the output folder.
        command: the command's name, e.g. ``"sweep"``.
        writes: patterns of the names the command writes at the top of the folder.
        earlier: an entry only this command makes: a folder holding it (without a mark, from a
            prunekit that did not write marks) is taken as the command's.

    Raises:
        OutputError: naming the folder and the names in the way.
    """
    path = Path(path)
    marked = _commands(path)
    ours = command in marked or (earlier is not None and (path / earlier).exists())
    if path.is_dir() and not ours:
        clashes = sorted(p.name for p in path.iterdir() if any(fnmatch.fnmatch(p.name, w) for w in writes))
        if clashes:
            raise OutputError(f"output folder {path} holds {_some(clashes)}, which prunekit {command} writes but did "
                              f"not write there; move {'it' if len(clashes) == 1 else 'them'} away or choose another "
                              f"folder")


def mark_output(path: str | os.PathLike, command: str) -> None:
    """Mark the folder ``path`` (created) as ``command``'s output, once the command starts writing there."""
    path = Path(path)
    marked = _commands(path)
    if command not in marked:
        atomic_write_text(path / OUTPUT_MARKER, json.dumps({"commands": [*marked, command]}) + "\n")
