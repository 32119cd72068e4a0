"""The one way prunekit writes files: through a uniquely named temporary, renamed into place.

* :func:`atomic_path` yields a temporary path beside the target; when the block ends without an
  error the temporary is renamed over the target (``os.replace``), otherwise it is removed. A
  reader never sees a half-written file, a crash or a full disk leaves the old file intact, and
  two writers never share a temporary name.
* :func:`atomic_folder` does the same for a whole folder (a checkpoint): it is built under a
  temporary name and swapped in at once, so old and new files never mix.
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
    ['config.json']
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

    An existing ``path`` is swapped out atomically where the system allows (Linux), else renamed
    aside first; either way it is removed only once the new folder is in place. On failure the
    temporary folder is removed and ``path`` is untouched.

    Raises:
        OutputError: if ``path`` is a file, or the folder cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} exists and is not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        yield tmp  # errors of the writer itself pass through unchanged
        try:
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


def check_output(path: str | os.PathLike, *, kind: str = "folder", inputs: Sequence[str | os.PathLike] = (),
                 allow_other_files: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written as a ``kind`` (``"folder"`` or ``"file"``).

    Args:
        path: the output.
        kind: ``"folder"`` (a checkpoint or result folder) or ``"file"``.
        inputs: paths the command reads; the output may not be one of them nor contain one.
        allow_other_files: accept a non-empty folder that holds no ``config.json`` (a sweep folder);
            by default such a folder is refused, so nothing of the user's is replaced.

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
    if kind == "folder" and path.is_dir() and not allow_other_files and any(path.iterdir()) \
            and not (path / "config.json").exists():
        raise OutputError(f"output folder {path} already holds files that are not a prunekit checkpoint; "
                          f"choose an empty or new folder")
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
