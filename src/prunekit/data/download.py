"""Finding data files on disk, or downloading them with a progress bar, atomically.

Files are looked for, in order, in ``data_dir``, ``$PRUNEKIT_DATA`` and the user
cache folder (``$XDG_CACHE_HOME/prunekit/<name>`` or ``~/.cache/prunekit/<name>``),
in each directly or in a ``<name>/`` subfolder, as ``<file>`` or ``<file>.gz``.

A download is written to a temporary file in the destination folder, checked
by an optional ``verify`` callback, and only then renamed (``os.replace``) to
its final name: a half-written or rejected file never appears under the final
name, and the temporary file is removed on any failure, KeyboardInterrupt
included. ``urllib.request`` does the transfer, so ``file://`` URLs work too.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import BinaryIO, Callable, Optional, Sequence

from tqdm.auto import tqdm

from prunekit.errors import DataError

DATA_ENV_VAR = "PRUNEKIT_DATA"
MIRRORS_ENV_VAR = "PRUNEKIT_MIRRORS"
DEFAULT_TIMEOUT = 30.0
_CHUNK = 1 << 20
#: Errors that mean "this URL did not give us the file": try the next mirror.
DOWNLOAD_ERRORS = (OSError, ValueError, DataError, http.client.HTTPException)


def download_file(url: str, dest: os.PathLike | str, *,
                  verify: Optional[Callable[[Path], None]] = None,
                  progress: bool = True, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Download ``url`` to ``dest`` through a temporary file in the same folder.

    Args:
        url: any URL ``urllib.request`` opens (``https://``, ``http://``, ``file://``).
        dest: the final path; its folder is created if needed.
        verify: called with the temporary file's path (whose name ends like
            ``dest``'s, e.g. ``.gz``) once it is complete; raise to reject it.
        progress: show a tqdm progress bar.
        timeout: seconds to wait for the server at connection and between reads.

    Returns:
        ``dest`` as a ``Path``, now holding the complete, verified file.

    Raises:
        OSError, ValueError, http.client.HTTPException: the transfer failed
            (``urllib.error.URLError`` is an ``OSError``).
        DataError: incomplete transfer, or raised by ``verify``.

    Example:
        >>> download_file("file:///tmp/a.gz", "/tmp/copy/a.gz", progress=False)  # doctest: +SKIP
        PosixPath('/tmp/copy/a.gz')
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{dest.name}", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _copy_url(url, out, desc=dest.name, progress=progress, timeout=timeout)
        if verify is not None:
            verify(tmp)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return dest


def _copy_url(url: str, out: BinaryIO, *, desc: str, progress: bool, timeout: float) -> None:
    """Stream ``url`` into ``out`` with a progress bar; check the announced length."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        written = 0
        with tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                  disable=not progress, leave=False) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
    if total is not None and written != total:
        raise DataError(f"incomplete download: got {written} of {total} bytes")


def download_from_mirrors(urls: Sequence[str], dest: os.PathLike | str, *,
                          verify: Optional[Callable[[Path], None]] = None,
                          progress: bool = True,
                          timeout: float = DEFAULT_TIMEOUT) -> tuple[Optional[str], list[str]]:
    """Try each URL in turn until one gives a file that passes ``verify``.

    Args:
        urls: candidate URLs of the same file, in order of preference.
        dest: the final path (see :func:`download_file`).
        verify: see :func:`download_file`; a rejected download is deleted.
        progress: show a tqdm progress bar.
        timeout: seconds, per URL (see :func:`download_file`).

    Returns:
        ``(url, failures)``: the URL that worked (``None`` when none did) and
        one ``"URL: error"`` line per URL that failed before it.

    Example:
        >>> url, failures = download_from_mirrors(["file:///nope/a.gz"], "/tmp/x/a.gz",
        ...                                       progress=False)  # doctest: +SKIP
        >>> url is None, len(failures)  # doctest: +SKIP
        (True, 1)
    """
    failures: list[str] = []
    for url in urls:
        try:
            download_file(url, dest, verify=verify, progress=progress, timeout=timeout)
        except DOWNLOAD_ERRORS as err:
            failures.append(f"{url}: {err}")
        else:
            return url, failures
    return None, failures


def search_roots(name: str, data_dir: Optional[os.PathLike | str] = None) -> list[Path]:
    """The places searched, in order: ``data_dir``, ``$PRUNEKIT_DATA``, the cache folder.

    The first one is where missing files are downloaded to.
    """
    roots = [Path(data_dir).expanduser()] if data_dir is not None else []
    if os.environ.get(DATA_ENV_VAR):
        roots.append(Path(os.environ[DATA_ENV_VAR]).expanduser())
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    roots.append(Path(cache) / "prunekit" / name)
    return [root.absolute() for root in roots]


def search_folders(name: str, data_dir: Optional[os.PathLike | str] = None) -> list[Path]:
    """Every folder searched, in order: each of :func:`search_roots`, then its ``<name>/``."""
    folders: list[Path] = []
    for root in search_roots(name, data_dir):
        folders += [f for f in (root, root / name) if f not in folders]
    return folders


def find_file(folders: Sequence[Path], filename: str) -> Optional[Path]:
    """The first existing ``<folder>/<filename>`` or ``<folder>/<filename>.gz``, else None."""
    candidates = (folder / name for folder in folders for name in (filename, filename + ".gz"))
    return next((path for path in candidates if path.is_file()), None)


def resolve_mirrors(default: Sequence[str], mirrors: Optional[Sequence[str]] = None) -> list[str]:
    """Mirror base URLs: ``mirrors`` if given, else ``$PRUNEKIT_MIRRORS`` (comma-separated),
    else ``default``."""
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    if mirrors is None and os.environ.get(MIRRORS_ENV_VAR, "").strip():
        mirrors = os.environ[MIRRORS_ENV_VAR].split(",")
    return [m.strip() for m in (default if mirrors is None else mirrors) if m.strip()]


def fetch_gz(filenames: Sequence[str], target: Path, mirrors: Sequence[str], *,
             verify: Callable[[str, Path], None], progress: bool = True,
             timeout: float = DEFAULT_TIMEOUT) -> tuple[dict[str, Path], list[str]]:
    """Download ``<mirror>/<filename>.gz`` to ``target/<filename>.gz`` for each filename.

    Stops at the first file that no mirror provides. ``verify(filename, tmp_path)``
    checks each download before it is renamed into place.

    Returns:
        ``(fetched, failures)``: filename -> downloaded path, and the failed attempts.
    """
    fetched: dict[str, Path] = {}
    failures: list[str] = []
    for filename in filenames:
        urls = [m.rstrip("/") + "/" + filename + ".gz" for m in mirrors]
        url, failed = download_from_mirrors(
            urls, target / (filename + ".gz"), progress=progress, timeout=timeout,
            verify=lambda tmp, name=filename: verify(name, tmp))
        failures += failed
        if url is None:
            break
        fetched[filename] = target / (filename + ".gz")
    return fetched, failures


def not_found_message(name: str, missing: Sequence[str], all_files: Sequence[str],
                      folders: Sequence[Path], failures: Optional[Sequence[str]]) -> str:
    """Explain what was searched and tried (``failures=None``: no download attempted)."""
    lines = [f"{name}: cannot find " + ", ".join(f + "[.gz]" for f in missing) + ".",
             "Folders searched (each for <file> and <file>.gz):"]
    lines += [f"  {folder}" for folder in folders]
    if failures is None:
        lines.append("No download attempted (download=False).")
    else:
        lines += ["URLs tried:"] + ([f"  {f}" for f in failures] or ["  (no mirror configured)"])
    lines.append(f"To supply the files: put the four files {', '.join(all_files)} (each .gz or "
                 f"decompressed) in one folder and pass --data-dir FOLDER (data_dir=FOLDER in "
                 f"Python) or set {DATA_ENV_VAR}=FOLDER; or set {MIRRORS_ENV_VAR} to "
                 f"comma-separated base URLs to download them from.")
    return "\n".join(lines)
