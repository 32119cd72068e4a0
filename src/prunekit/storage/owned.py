"""Which files of a folder prunekit wrote, and reads that see one whole save.

Every folder :func:`~prunekit.storage.atomic_folder` saves (a checkpoint, a compact model) holds
``manifest.json``: each file of that save with its size and SHA-256. It serves two ends:

* **ownership**: the files a manifest lists are prunekit's; anything else in the folder (notes, an
  ``exports/`` folder) is the user's, and a later save into the folder carries it over untouched.
  A non-empty folder that prunekit did not save is never replaced.
* **consistent reads**: :func:`read_consistently` reads a folder through :class:`FolderFiles`, whose
  every file is checked against the manifest read first; a file from another save (a writer
  replaced the folder meanwhile: the manifest changed too) makes the whole read start again. A
  file that differs although the manifest did not change was edited (or corrupted) since: it is
  read as it is, with a :class:`ChangedFileWarning`, and its own checks apply.

Folders saved before manifests existed are recognised by their ``config.json`` (a checkpoint) or
``plan.json`` (a compact model) and read unchecked.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text("{}")
    >>> write_manifest(folder)
    >>> _ = (folder / "notes.txt").write_text("mine")
    >>> sorted(prunekit_entries(folder)), foreign_entries(folder)
    (['config.json', 'manifest.json'], ['notes.txt'])
    >>> read_consistently(folder, lambda files: files.read("config.json", "a config"))
    b'{}'
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..errors import CheckpointError
from .reading import read_bytes

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "prunekit.folder"
LEGACY_FILES = frozenset({"config.json", "metrics.json", "model.safetensors", "masks.safetensors",
                          "architecture.json", "plan.json"})
"""The files prunekit's folder saves held before manifests, and the names a save may write."""
OWNED_NAMES = LEGACY_FILES | {MANIFEST_FILE}

T = TypeVar("T")


class FolderChanged(CheckpointError):
    """A file read from a folder is not the one its manifest lists (another save replaced it)."""


class ChangedFileWarning(UserWarning):
    """A file of a save differs from its manifest although no other save replaced the folder: it was
    edited by hand (or corrupted) since; it is read as it is and checked as any file is."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_manifest(folder: Path) -> None:
    """List every file of ``folder`` (a save not yet in place) in its ``manifest.json``."""
    files = {}
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.name != MANIFEST_FILE:
            data = entry.read_bytes()
            files[entry.name] = {"bytes": len(data), "sha256": _digest(data)}
        elif entry.is_dir():
            files[entry.name] = {"folder": True}
    manifest = {"format": MANIFEST_FORMAT, "version": 1, "save": os.urandom(8).hex(), "files": files}
    with open(folder / MANIFEST_FILE, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def _parse_manifest(data: bytes, where: Path) -> dict[str, dict[str, Any]]:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{where} is not valid JSON; it lists the files of the save") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise CheckpointError(f"{where} is not a prunekit manifest (expected format {MANIFEST_FORMAT!r})")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, dict) and Path(k).name == k and k not in ("", ".", "..")
                                              for k, v in files.items()):
        raise CheckpointError(f"{where}: 'files' must map file names of the folder to their size and SHA-256")
    return files


def _manifest_bytes(folder: Path) -> bytes | None:
    where = folder / MANIFEST_FILE
    if not where.is_file():
        return None
    return read_bytes(where, "a prunekit manifest", error=CheckpointError, max_bytes=16 << 20)


def read_manifest(folder: Path) -> dict[str, dict[str, Any]] | None:
    """``{file name: {"bytes", "sha256"}}`` of a folder's manifest; None if it has none.

    Raises:
        CheckpointError: if the manifest is malformed.
    """
    data = _manifest_bytes(folder)
    return None if data is None else _parse_manifest(data, folder / MANIFEST_FILE)


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_legacy_save(folder: Path) -> bool:
    """A folder prunekit saved before manifests: a checkpoint's config.json, or a compact model's plan."""
    if _json_object(folder / "plan.json").get("format") == "prunekit.plan":
        return True
    config = _json_object(folder / "config.json")
    return isinstance(config.get("format_version"), int) and isinstance(config.get("model"), dict)


def prunekit_entries(folder: Path) -> set[str] | None:
    """The names in ``folder`` that a prunekit save wrote; None if it is not a folder prunekit saved."""
    try:
        manifest = read_manifest(folder)
    except CheckpointError:
        return None  # a manifest that is not prunekit's (or broken): nothing here is known to be ours
    if manifest is not None:  # what it lists, if still of the kind it lists (a file, or a folder)
        return {name for name, entry in manifest.items() if (folder / name).is_dir() == bool(entry.get("folder"))} \
            | {MANIFEST_FILE}
    if _is_legacy_save(folder):
        return {entry.name for entry in folder.iterdir() if entry.name in LEGACY_FILES and entry.is_file()}
    return None


def foreign_entries(folder: Path) -> list[str]:
    """The entries of a folder prunekit saved that the save did not write (the user's), sorted."""
    ours = prunekit_entries(folder) or set()
    return sorted(entry.name for entry in folder.iterdir() if entry.name not in ours)


class FolderFiles:
    """The files of one save of a folder: each read is checked against the manifest read first.

    Args:
        folder: the folder.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._manifest_bytes = _manifest_bytes(self.folder)
        self.manifest = None if self._manifest_bytes is None else \
            _parse_manifest(self._manifest_bytes, self.folder / MANIFEST_FILE)
        self.warned: set[str] = set()

    def has(self, name: str) -> bool:
        """Whether the save holds ``name``: a file the manifest lists (a file beside it that the manifest does
        not list is not the save's) that is there."""
        if self.manifest is None:
            return (self.folder / name).exists()
        if name not in self.manifest:
            return False
        if not (self.folder / name).exists():
            if self._replaced():
                raise FolderChanged(f"{self.folder / name} vanished: the folder was replaced while it was read")
            self._warn_once(name, f"{self.folder / name} was deleted since its save wrote it (it is in "
                                  f"{MANIFEST_FILE}); reading the folder without it")
            return False
        return True

    def snapshot(self, names: dict[str, str]) -> "Snapshot":
        """The bytes of the files ``{name: what it is}`` (checked as :meth:`read` checks them), in memory."""
        return Snapshot(self.folder, {name: self.read(name, what) for name, what in names.items()})

    def read(self, name: str, what: str) -> bytes:
        """The bytes of ``name``, the ones the manifest lists.

        Raises:
            FolderChanged: if the file is missing or differs from the manifest's (read it again).
            CheckpointError: if it cannot be read, or the manifest does not list it.
        """
        path = self.folder / name
        if self.manifest is None:
            return read_bytes(path, what, error=CheckpointError)
        entry = self.manifest.get(name)
        if entry is None:
            raise CheckpointError(f"{self.folder / MANIFEST_FILE} does not list {name}; expected {what} of the save")
        try:
            data = read_bytes(path, what, error=CheckpointError)
        except CheckpointError:
            if self._replaced():
                raise FolderChanged(f"{path} vanished: the folder was replaced while it was read") from None
            raise
        if len(data) != entry.get("bytes") or _digest(data) != entry.get("sha256"):
            if self._replaced():
                raise FolderChanged(f"{path} is from another save than the {MANIFEST_FILE} read before it")
            self._warn_once(name, f"{path} differs from the file its save wrote (size or SHA-256 in {MANIFEST_FILE}): "
                                  f"it was edited or corrupted since; reading it as it is")  # nobody replaced it
        return data

    def _warn_once(self, name: str, message: str) -> None:
        """A :class:`ChangedFileWarning` about ``name``, once per read of the folder."""
        if name not in self.warned:
            self.warned.add(name)
            warnings.warn(ChangedFileWarning(message), stacklevel=3)

    def _replaced(self) -> bool:
        """Whether the folder now holds another save than the one whose manifest was read."""
        try:
            return _manifest_bytes(self.folder) != self._manifest_bytes
        except CheckpointError:
            return True


class Snapshot:
    """Files of one save read into memory, with the reading interface of :class:`FolderFiles`: what
    :func:`read_consistently` hands back, so a caller builds its objects only once the read is whole."""

    def __init__(self, folder: Path, data: dict[str, bytes]):
        self.folder, self.data = Path(folder), data

    def has(self, name: str) -> bool:
        return name in self.data

    def read(self, name: str, what: str) -> bytes:
        if name not in self.data:
            raise CheckpointError(f"{self.folder / name} is not part of the save read; expected {what}")
        return self.data[name]


def read_consistently(folder: str | os.PathLike, load: Callable[[FolderFiles], T], *, attempts: int = 10,
                      wait: float = 0.05) -> T:
    """``load(files)`` for one whole save of ``folder``: started again when a writer replaced the folder
    while it was read (a file from another save than the manifest's).

    Raises:
        CheckpointError: if saves still mixed after ``attempts`` tries (writers that never stop), or
            anything ``load`` raises.
    """
    folder = Path(folder)
    for attempt in range(attempts):
        try:
            files = FolderFiles(folder)
            result = load(files)
            if not files._replaced():  # a save swapped in after the last file was read: read it again
                return result
            raise FolderChanged(f"{folder} was replaced while it was read")
        except FolderChanged as exc:
            last = exc
            time.sleep(wait * (attempt + 1))
    raise CheckpointError(f"{folder} was replaced by another save while it was read, {attempts} times in a row "
                          f"({last}); another process keeps writing it: read it once that is done")
