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

import http.client
import os
import urllib.request
from pathlib import Path
from typing import BinaryIO, Callable, Optional, Sequence

from tqdm.auto import tqdm

from prunekit.errors import DataError
from prunekit.storage.atomic import atomic_path

DATA_ENV_VAR = "PRUNEKIT_DATA"
MIRRORS_ENV_VAR = "PRUNEKIT_MIRRORS"
DEFAULT_TIMEOUT = 30.0
_CHUNK = 1 << 20
#: Errors that mean "this URL did not give us the file": try the next mirror.
DOWNLOAD_ERRORS = (OSError, ValueError, DataError, http.client.HTTPException)


def download_file(url: str, dest: os.PathLike | str, *,
                  verify: Optional[Callable[[Path, str], None]] = None,
                  progress: bool = True, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Download ``url`` to ``dest`` through a temporary file in the same folder.

    Args:
        url: any URL ``urllib.request`` opens (``https://``, ``http://``, ``file://``).
        dest: the final path; its folder is created if needed.
        verify: called with the temporary file's path (whose name ends like
            ``dest``'s, e.g. ``.gz``) and ``url`` once it is complete; raise to reject it.
        progress: show a tqdm progress bar.
        timeout: seconds to wait for the server at connection and between reads.

    Returns:
        ``dest`` as a ``Path``, now holding the complete, verified file.

    Raises:
        OSError, ValueError, http.client.HTTPException: the transfer failed
            (``urllib.error.URLError`` is an ``OSError``).
        DataError: incomplete transfer, or raised by ``verify``.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.gz").write_bytes(b"data")
        >>> download_file((folder / "a.gz").as_uri(), folder / "copy" / "a.gz", progress=False).read_bytes()
        b'data'
    """
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out:
            _copy_url(url, out, desc=dest.name, progress=progress, timeout=timeout)
        if verify is not None:
            verify(tmp, url)
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
                          verify: Optional[Callable[[Path, str], None]] = None,
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
        >>> import tempfile
        >>> url, failures = download_from_mirrors(["file:///nope/a.gz"], tempfile.mkdtemp() + "/a.gz",
        ...                                       progress=False)
        >>> url is None, len(failures)
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

    The first one is where missing files are downloaded to (see :func:`download_root`).
    """
    roots = [Path(data_dir).expanduser()] if data_dir is not None else []
    if os.environ.get(DATA_ENV_VAR):
        roots.append(Path(os.environ[DATA_ENV_VAR]).expanduser())
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    roots.append(Path(cache) / "prunekit" / name)
    return [root.absolute() for root in roots]


def download_root(name: str, data_dir: Optional[os.PathLike | str] = None) -> Path:
    """Where missing files are downloaded: the first of :func:`search_roots`.

    A folder the user named (``data_dir`` or ``$PRUNEKIT_DATA``) must exist: a mistyped path is
    an error rather than a new folder filled with downloads; the cache folder is created.

    Raises:
        DataError: naming the missing folder and where it came from.
    """
    root = search_roots(name, data_dir)[0]
    if data_dir is not None or os.environ.get(DATA_ENV_VAR):
        origin = "data_dir (--data-dir)" if data_dir is not None else f"${DATA_ENV_VAR}"
        if not root.is_dir():
            raise DataError(f"{origin} is {root}, which {'is not a folder' if root.exists() else 'does not exist'}; "
                            f"{name} files would be downloaded there. Create it, or point {origin} at the folder "
                            f"that holds the files")
    return root


def search_folders(name: str, data_dir: Optional[os.PathLike | str] = None) -> list[Path]:
    """Every folder searched, in order: each of :func:`search_roots`, then its ``<name>/``."""
    folders: list[Path] = []
    for root in search_roots(name, data_dir):
        folders += [f for f in (root, root / name) if f not in folders]
    return folders


def find_file(folders: Sequence[Path], filename: str) -> Optional[Path]:
    """The first existing ``<folder>/<filename>`` or ``<folder>/<filename>.gz``, else None.

    Raises:
        DataError: if the first path found is a folder, or a file that cannot be read.
    """
    candidates = (folder / name for folder in folders for name in (filename, filename + ".gz"))
    for path in candidates:
        if path.is_dir():
            raise DataError(f"{path} is a folder; expected the data file {path.name}")
        if path.exists():
            if not os.access(path, os.R_OK):
                raise DataError(f"{path} exists but cannot be read (permission denied)")
            return path
    return None


def resolve_mirrors(default: Sequence[str], mirrors: Optional[Sequence[str]] = None) -> list[str]:
    """Mirror base URLs: ``mirrors`` if given, else ``$PRUNEKIT_MIRRORS`` (comma-separated),
    else ``default``."""
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    if mirrors is None and os.environ.get(MIRRORS_ENV_VAR, "").strip():
        mirrors = os.environ[MIRRORS_ENV_VAR].split(",")
    return [m.strip() for m in (default if mirrors is None else mirrors) if m.strip()]


def fetch_gz(filenames: Sequence[str], target: Path, mirrors: Sequence[str], *,
             verify: Callable[[str, Path, str], None], progress: bool = True,
             timeout: float = DEFAULT_TIMEOUT) -> tuple[dict[str, Path], list[str]]:
    """Download ``<mirror>/<filename>.gz`` to ``target/<filename>.gz`` for each filename.

    Stops at the first file that no mirror provides. ``verify(filename, tmp_path, url)``
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
            verify=lambda tmp, url, name=filename: verify(name, tmp, url))
        failures += failed
        if url is None:
            break
        fetched[filename] = target / (filename + ".gz")
    return fetched, failures


def not_found_message(name: str, missing: Sequence[str], all_files: Sequence[str],
                      folders: Sequence[Path], failures: Optional[Sequence[str]], hint: str = "") -> str:
    """Explain what was searched and tried (``failures=None``: no download attempted)."""
    lines = [f"{name}: cannot find " + ", ".join(f + "[.gz]" for f in missing) + ".",
             "Folders searched (each for <file> and <file>.gz):"]
    lines += [f"  {folder}" for folder in folders]
    if failures is None:
        lines.append("No download attempted (download=False).")
    else:
        lines += ["URLs tried:"] + ([f"  {f}" for f in failures] or ["  (no mirror configured)"])
    what = hint or f"the files {', '.join(all_files)} (each .gz or decompressed)"
    lines.append(f"To supply them: put {what} in one folder and pass --data-dir FOLDER (data_dir=FOLDER in "
                 f"Python) or set {DATA_ENV_VAR}=FOLDER; or set {MIRRORS_ENV_VAR} to "
                 f"comma-separated base URLs to download them from.")
    return "\n".join(lines)
