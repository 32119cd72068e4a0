"""Plug-ins: installed packages that add methods, criteria, schedules, models or datasets to prunekit's
registries, found by their ``prunekit.plugins`` entry point.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."prunekit.plugins"]
    my_methods = "my_package.prunekit_plugin"

and the module (or ``module:function``, called with no arguments) registers what it brings, e.g.
``prunekit.prune.METHODS.register(...)``. The command line (and every sweep worker) loads the installed
plug-ins once before parsing, so a plug-in's method is a valid ``--method`` at once; the Python API leaves
loading to you (import your module, or call :func:`load_plugins`). Only installed packages are loaded,
never code named in a file prunekit reads.

Example:
    >>> load_plugins()  # nothing installed here declares one
    []
"""

from __future__ import annotations

import warnings
from importlib import metadata

GROUP = "prunekit.plugins"

_loaded: dict[str, str] = {}


def load_plugins() -> list[str]:
    """Load every installed ``prunekit.plugins`` entry point once; returns the names loaded by this call.

    A plug-in that fails to load is skipped with a warning naming it and its error; the others still load.
    """
    names = []
    for point in sorted(metadata.entry_points(group=GROUP), key=lambda p: p.name):
        if point.name in _loaded:
            continue
        _loaded[point.name] = point.value
        try:
            loaded = point.load()
            if callable(loaded):
                loaded()
        except Exception as exc:  # a broken plug-in must not take the command line down
            warnings.warn(f"prunekit plug-in {point.name!r} ({point.value}) did not load: "
                          f"{type(exc).__name__}: {exc}", stacklevel=2)
            continue
        names.append(point.name)
    return names
