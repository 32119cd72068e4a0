"""The compiled kernels (``prunekit.kernels._sparse``, built from C at install when a compiler is there).

Without them prunekit runs on its other kernels (dense, scipy's CSR) and says so once, in one line.

Example:
    >>> available() in (True, False)
    True
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Optional

from ..errors import ConfigError

NOT_BUILT = ("prunekit's compiled sparse kernels are not built (no C compiler when prunekit was installed): sparse "
             "layers run on scipy's CSR or dense; reinstall with gcc on the PATH to build them")

_module: Optional[Any] = None
_tried = False
_warned = False


def _load() -> Optional[Any]:
    global _module, _tried
    if not _tried:
        _tried = True
        try:
            _module = importlib.import_module(f"{__package__}._sparse")
        except ImportError:
            _module = None
    return _module


def available() -> bool:
    """Whether the compiled kernels are built and importable."""
    return _load() is not None


def note_if_missing() -> Optional[str]:
    """The one-line note (warned once per process) when the compiled kernels are missing, else ``None``."""
    global _warned
    if available():
        return None
    if not _warned:
        _warned = True
        warnings.warn(NOT_BUILT, RuntimeWarning, stacklevel=2)
    return NOT_BUILT


def module() -> Any:
    """The compiled module.

    Raises:
        ConfigError: when it is not built (:data:`NOT_BUILT`).
    """
    loaded = _load()
    if loaded is None:
        raise ConfigError(NOT_BUILT)
    return loaded


def vector_isa() -> str:
    """``avx2`` or ``portable`` (the compiled code path this CPU runs), or ``none`` when not built."""
    return module().vector_isa() if available() else "none"


def use_vector_isa(name: str) -> str:
    """Run the compiled kernels' ``portable`` loops, or their ``avx2`` ones where the CPU has them (the default
    where it does); gives the code path in use before. For tests (they check the portable loops on any CPU):
    call it while no kernel runs, and re-measure any kernel choices made before (``sparsify``'s timings).

    Example:
        >>> if available():
        ...     before = use_vector_isa("portable")
        ...     assert vector_isa() == "portable"
        ...     _ = use_vector_isa(before)

    Raises:
        ConfigError: an unknown name, ``avx2`` on a CPU without it, or the kernels not built.
    """
    before = vector_isa()
    try:
        module().set_vector_isa(name)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return before
