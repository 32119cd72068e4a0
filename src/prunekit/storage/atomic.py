"""The one way prunekit writes files: through a uniquely named temporary, renamed into place.

* :func:`atomic_path` yields a temporary path beside the target; when the block ends without an
  error the temporary is renamed over the target (``os.replace``), otherwise it is removed. A
  reader never sees a half-written file, a crash or a full disk leaves the old file intact, and
  two writers never share a temporary name.
* :func:`atomic_folder` does the same for a whole folder (a checkpoint): it is built under a
  temporary name, listed in its ``manifest.json`` (:mod:`.owned`) and swapped in at once, so old and
  new files never mix. What the folder held that prunekit did not write is carried over into the
  new one; a non-empty folder that prunekit did not save is never replaced.
* Files get the permissions any other new file would (``0666`` less the umask), not the
  ``0600`` of ``tempfile``.
* :func:`check_output` checks an output path *before* the work starts.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_text(folder / "a.txt", "hello")
    >>> (folder / "a.txt").read_text()
    'hello'
    >>> with atomic_folder(folder / "ck") as tmp:
    ...     atomic_write_text(tmp / "config.json", "{}")
    >>> sorted(p.name for p in (folder / "ck").iterdir())
    ['config.json', 'manifest.json']
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from ..errors import OutputError
from .owned import OWNED_NAMES, foreign_entries, prunekit_entries, write_manifest

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _umask() -> int:
    try:  # Linux: read it without changing it (thread-safe)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode a new file gets under the current umask (``0o666 & ~umask``), e.g. ``0o644``."""
    return 0o666 & ~_umask()


def _write_error(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    The parent folder is created; the temporary's name ends in ``path``'s suffix (``.gz``...).
    Whatever writes the temporary (safetensors, matplotlib, the ONNX exporter, a download) must
    finish inside the block; an exception (or Ctrl-C) inside it removes the temporary.

    Raises:
        OutputError: if the folder cannot be created or the file cannot be written (full disk...).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
        os.close(fd)
    except OSError as exc:
        raise _write_error(path, exc) from None
    tmp = Path(name)
    try:
        yield tmp  # errors of the writer itself pass through unchanged
        try:
            os.chmod(tmp, new_file_mode())
            os.replace(tmp, path)
        except OSError as exc:
            raise _write_error(path, exc) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise _write_error(Path(path), exc) from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_move(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the file ``source`` to ``target`` (same filesystem) in one step, replacing ``target``.

    Raises:
        OutputError: if it cannot be moved.
    """
    try:
        os.replace(source, target)
    except OSError as exc:
        raise OutputError(f"cannot move {source} to {target}: {exc.strerror or exc}") from None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``; False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; when the block succeeds it replaces ``path`` as one unit.

    The new folder gets a ``manifest.json`` listing its files. An existing ``path`` must be empty or
    a folder prunekit saved; the entries of it that prunekit did not write (notes, ``exports/``) are
    carried over (hard links, or copies across filesystems), then the old folder is swapped out
    atomically where the system allows (Linux), else renamed aside first; either way it is removed
    only once the new folder is in place. On failure the temporary folder is removed and ``path`` is
    untouched.

    Raises:
        OutputError: if ``path`` is a file, a folder prunekit did not save, holds a file of the user's
            named like one the save writes, or cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} exists and is not a folder")
    _carried_entries(path)  # refuse before any work
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        yield tmp  # errors of the writer itself pass through unchanged
        try:
            write_manifest(tmp)
            for name in _carried_entries(path, tmp):
                _link_tree(path / name, tmp / name)
            _swap_in(tmp, path)
        except OSError as exc:
            raise _write_error(path, exc) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, path: Path) -> None:
    os.chmod(tmp, 0o777 & ~_umask())
    if not path.exists():
        os.rename(tmp, path)
    elif _exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old folder
    else:
        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
        os.rename(path, old / "old")
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)


def _carried_entries(path: Path, new: Path | None = None) -> list[str]:
    """The entries of an existing ``path`` that a new save must carry over (the user's).

    Raises:
        OutputError: if ``path`` is a non-empty folder prunekit did not save, or one of the user's
            entries has a name the save writes (``new``: the save; else any name a save may write).
    """
    if not path.is_dir() or not any(path.iterdir()):
        return []
    if prunekit_entries(path) is None:
        names = _some(sorted(p.name for p in path.iterdir()))
        raise OutputError(f"{path} is not a prunekit checkpoint and holds files prunekit did not write ({names}), "
                          f"so it is not replaced; choose an empty or new folder")
    foreign = foreign_entries(path)
    clashes = [name for name in foreign if ((new / name).exists() if new is not None else name in OWNED_NAMES)]
    if clashes:
        raise OutputError(f"{path} holds {_some(clashes)}, which prunekit did not write but a save of it writes; "
                          f"move {'it' if len(clashes) == 1 else 'them'} away or choose another folder")
    return foreign


def _some(names: Sequence[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _link_tree(source: Path, target: Path) -> None:
    """Put ``source`` (a file, folder or symbolic link) at ``target`` too, sharing the files (hard links)."""
    if source.is_symlink():
        os.symlink(os.readlink(source), target)
    elif source.is_dir():
        shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(source, target)


def _link_or_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not allowed: a copy
        shutil.copy2(source, target)


def check_output(path: str | os.PathLike, *, kind: str = "folder", inputs: Sequence[str | os.PathLike] = (),
                 allow_other_files: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written as a ``kind`` (``"folder"`` or ``"file"``).

    Args:
        path: the output.
        kind: ``"folder"`` (a checkpoint or result folder) or ``"file"``.
        inputs: paths the command reads; the output may not be one of them, contain one, nor be (or lie
            in) a file that an input folder's save holds (its ``model.safetensors``...).
        allow_other_files: accept any non-empty folder (a sweep folder, whose files are written one by
            one); by default a non-empty folder must be one prunekit saved, whose other entries the
            save carries over, so nothing of the user's is replaced.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OutputError: naming the path and what is wrong.

    Example:
        >>> check_output("/proc/version", kind="folder")
        Traceback (most recent call last):
        ...
        prunekit.errors.OutputError: output folder /proc/version exists and is a file
    """
    path = Path(path)
    if path.exists():
        if kind == "folder" and not path.is_dir():
            raise OutputError(f"output folder {path} exists and is a file")
        if kind == "file" and path.is_dir():
            raise OutputError(f"output file {path} exists and is a folder")
    resolved = path.resolve()
    for source in inputs:
        if not Path(source).exists():
            continue  # nothing there to overwrite; reading it will say it is missing
        src = Path(source).resolve()
        if resolved == src or resolved in src.parents:
            raise OutputError(f"output {path} would overwrite the input {source}; choose another output path")
        if src.is_dir() and src in resolved.parents:
            first = resolved.relative_to(src).parts[0]
            if first in (prunekit_entries(src) or set()) | OWNED_NAMES:
                raise OutputError(f"output {path} would overwrite {Path(source) / first} of the input {source}; "
                                  f"choose another output path")
    if kind == "folder" and not allow_other_files:
        _carried_entries(path)  # a folder prunekit did not save, or a user's file in the way: refused
    _probe_writable(path if (kind == "folder" and path.is_dir()) else path.parent, path)
    return path


def _probe_writable(folder: Path, target: Path) -> None:
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write {target}: {existing} is a file, not a folder")
    try:
        fd, name = tempfile.mkstemp(dir=existing, prefix=".prunekit-probe-")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {existing} is not writable ({exc.strerror or exc})") from None
