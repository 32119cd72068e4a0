"""User code named on the command line: ``FILE.py:FUNCTION`` or ``package.module:FUNCTION``.

A reference is resolved only when the user passes it (``--model``, ``--dataset``); a reference
*recorded* in a checkpoint is never imported by loading the checkpoint.

Example:
    >>> is_reference("examples/models.py:small_cnn"), is_reference("mlp")
    (True, False)
    >>> load_callable("math:sqrt")(16.0)
    4.0
    >>> load_callable("math:nope")
    Traceback (most recent call last):
    ...
    prunekit.errors.ConfigError: math:nope: module math has no attribute 'nope'
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError


def is_reference(text: Any) -> bool:
    """Whether ``text`` names user code (``something:function``) rather than a registered name."""
    return isinstance(text, str) and ":" in text and not text.startswith(("http:", "https:", "file:", "hf:", "text:"))


def load_callable(reference: str) -> Callable[..., Any]:
    """The function a reference names, importing its file or module.

    Raises:
        ConfigError: naming the reference when the file or module is missing, fails to import
            (with the failing line), or has no such callable.
    """
    target, _, name = reference.rpartition(":")
    if not target or not name.isidentifier():
        raise ConfigError(f"{reference!r}: expected FILE.py:FUNCTION or package.module:FUNCTION")
    module = _import(target, reference)
    if not hasattr(module, name):
        raise ConfigError(f"{reference}: module {target} has no attribute {name!r}")
    fn = getattr(module, name)
    if not callable(fn):
        raise ConfigError(f"{reference}: {name} is a {type(fn).__name__}, not a function")
    return fn


def _import(target: str, reference: str):
    try:
        if target.endswith(".py") or "/" in target or "\\" in target:
            path = Path(target).expanduser()
            if not path.is_file():
                raise ConfigError(f"{reference}: file {path} does not exist")
            key = "prunekit_user_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
            if key in sys.modules:
                return sys.modules[key]
            spec = importlib.util.spec_from_file_location(key, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[key] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(key, None)
                raise
            return module
        return importlib.import_module(target)
    except ConfigError:
        raise
    except ModuleNotFoundError as exc:
        raise ConfigError(f"{reference}: cannot import {target} ({exc})") from None
    except (Exception, SystemExit) as exc:  # SystemExit: user code must not end prunekit, with status 0 or not
        raise ConfigError(f"{reference}: importing {target} failed at {_failure_site(exc)}") from None


def call(reference: str, what: str, **kwargs: Any) -> Any:
    """Call the function a reference names with ``kwargs``; its errors become ConfigError naming it."""
    fn = load_callable(reference)
    try:
        return fn(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{reference} (the {what}) cannot be called with {kwargs}: {exc}") from None
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"{reference} (the {what}) failed at {_failure_site(exc)}") from None


def _failure_site(exc: BaseException) -> str:
    """``file:line (Type: message)`` of where ``exc`` was raised, for errors about user code."""
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    if isinstance(exc, SystemExit):
        return f"{frame.filename}:{frame.lineno} (it called sys.exit({exc.code!r}))"
    return f"{frame.filename}:{frame.lineno} ({type(exc).__name__}: {exc})"
