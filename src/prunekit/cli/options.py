"""Command-line options generated from the config dataclasses, so every field can be set.

:func:`add_dataclass_options` adds one option per field of a frozen dataclass (``TrainConfig``,
``Recovery``, ``DistillConfig``...), typed from the annotations, with help taken from the class
docstring's ``Args:`` section and choices from field metadata; a nested dataclass field adds its
own options under a prefix (``--finetune-lr``), an optional one (``distill: DistillConfig | None``)
adds a flag that enables it. :func:`dataclass_from_args` builds the instance back.

Example:
    >>> import argparse
    >>> from prunekit.training import TrainConfig
    >>> parser = argparse.ArgumentParser()
    >>> add_dataclass_options(parser, TrainConfig)
    >>> args = parser.parse_args(["--momentum", "0.5", "--label-smoothing", "0.1"])
    >>> config = dataclass_from_args(TrainConfig, args)
    >>> config.momentum, config.label_smoothing, config.epochs
    (0.5, 0.1, 5.0)
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from typing import Any

_SCALARS = (int, float, str)


def field_help(cls: type) -> dict[str, str]:
    """``{field: help}`` from the ``Args:`` section of ``cls``'s docstring."""
    doc = cls.__doc__ or ""
    helps: dict[str, str] = {}
    lines = doc.split("Args:", 1)[1].splitlines() if "Args:" in doc else []
    current = None
    for line in lines:
        if not line.strip():
            continue
        match = re.match(r"^\s{4,8}(\w+(?:, \w+)*):\s*(.*)$", line)
        if match and len(line) - len(line.lstrip()) <= 8:
            names, text = match.groups()
            for name in names.split(", "):
                helps[name] = text
            current = names.split(", ")
        elif current and line.startswith(" " * 10):
            for name in current:
                helps[name] += " " + line.strip()
        elif not line.startswith(" "):
            break
    return {k: v.replace("``", "").replace("%", "%%") for k, v in helps.items()}


def _resolve(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional_dataclass(hint: Any) -> type | None:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            return inner[0]
    return None


def _option(prefix: str, name: str) -> str:
    return f"--{prefix}{name}".replace("_", "-")


def _dest(prefix: str, name: str) -> str:
    return f"{prefix}{name}".replace("-", "_")


def add_dataclass_options(parser, cls: type, *, prefix: str = "", defaults: Any = None,
                          skip: tuple[str, ...] = (), title: str | None = None,
                          types: dict[str, Any] | None = None) -> None:
    """Add an option for every field of the dataclass ``cls`` (see the module docstring).

    Args:
        parser: an ``argparse`` parser or argument group.
        cls: the dataclass.
        prefix: prepended to every option name (``"finetune-"`` gives ``--finetune-lr``).
        defaults: an instance whose values are the defaults (default: ``cls()``).
        skip: fields not to expose.
        title: put the options in a new argument group with this title.
        types: argparse types of some scalar fields instead of their annotation's (e.g. ``positive_int``).
    """
    defaults = defaults if defaults is not None else cls()
    helps, hints = field_help(cls), _resolve(cls)
    group = parser.add_argument_group(title) if title else parser
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        hint, default, text = hints[f.name], getattr(defaults, f.name), helps.get(f.name, "")
        nested = hint if dataclasses.is_dataclass(hint) else _optional_dataclass(hint)
        if nested is not None:
            if not dataclasses.is_dataclass(hint):
                group.add_argument(_option(prefix, f.name), action="store_true", dest=_dest(prefix, f.name),
                                   help=text or f"enable {f.name}")
            add_dataclass_options(parser, nested, prefix=f"{prefix}{f.name}-", defaults=default or nested(),
                                  title=f"{f.name.replace('_', ' ')}: {text}" if text else f.name)
            continue
        kwargs: dict[str, Any] = {"dest": _dest(prefix, f.name), "default": default, "help": text or f.name}
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif hint in _SCALARS:
            kwargs["type"] = (types or {}).get(f.name, hint)
            kwargs["metavar"] = {int: "N", float: "X", str: "NAME"}[hint]
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
                del kwargs["metavar"]
        else:
            continue  # tuples, dicts...: set by the command itself
        group.add_argument(_option(prefix, f.name), **kwargs)


def dataclass_from_args(cls: type, args: argparse.Namespace, *, prefix: str = "", skip: tuple[str, ...] = (),
                        **overrides: Any) -> Any:
    """The instance of ``cls`` that the options added by :func:`add_dataclass_options` describe."""
    hints = _resolve(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip or f.name in overrides:
            continue
        hint, dest = hints[f.name], _dest(prefix, f.name)
        if dataclasses.is_dataclass(hint):
            values[f.name] = dataclass_from_args(hint, args, prefix=f"{prefix}{f.name}-")
        elif (nested := _optional_dataclass(hint)) is not None:
            on = getattr(args, dest, False)
            values[f.name] = dataclass_from_args(nested, args, prefix=f"{prefix}{f.name}-") if on else None
        elif hasattr(args, dest):
            values[f.name] = getattr(args, dest)
    return cls(**values, **overrides)
