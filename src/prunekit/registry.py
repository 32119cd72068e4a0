"""One registry idiom for every extension point (models, datasets, criteria, schedules, exporters...).

A :class:`Registry` maps names to items; :meth:`Registry.get` raises :class:`UnknownNameError`
listing the valid names, so every "unknown X" message reads the same.

Example:
    >>> colours = Registry("colour")
    >>> _ = colours.register("red", "#f00", description="warm")
    >>> colours.get("red")
    '#f00'
    >>> colours.get("blue")
    Traceback (most recent call last):
    ...
    prunekit.errors.UnknownNameError: unknown colour 'blue'; known: red
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named items of one kind.

    Args:
        kind: what the items are, for messages (``"model"``, ``"pruning criterion"``...).
        normalize: maps a name to its key (e.g. lower-case); default: the name itself.
    """

    def __init__(self, kind: str, *, normalize: Callable[[str], str] | None = None):
        self.kind = kind
        self._normalize = normalize or (lambda name: name)
        self._items: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}

    def register(self, name: str, item: T | None = None, *, description: str = "", overwrite: bool = False):
        """Add ``item`` under ``name``; without ``item``, a decorator that registers what it decorates.

        Raises:
            ConfigError: if ``name`` is taken (unless ``overwrite``) or not a non-empty string.
        """
        if item is None:
            def decorate(obj: T) -> T:
                self.register(name, obj, description=description, overwrite=overwrite)
                return obj
            return decorate
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        key = self._normalize(name)
        if key in self._items and not overwrite:
            raise ConfigError(f"a {self.kind} named {name!r} is already registered")
        self._items[key] = item
        self._descriptions[key] = description
        return item

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return its item (e.g. a plug-in's entry, in its tests).

        Raises:
            UnknownNameError: for an unknown name.
        """
        item = self.get(name)
        key = self._normalize(name)
        del self._items[key], self._descriptions[key]
        return item

    def get(self, name: str) -> T:
        """The item called ``name``.

        Raises:
            UnknownNameError: for an unknown name (or a non-string), listing the known names.
        """
        key = self._normalize(name) if isinstance(name, str) else None
        if key not in self._items:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self.names()))}")
        return self._items[key]

    def describe(self, name: str) -> str:
        """The one-line description given at registration."""
        self.get(name)
        return self._descriptions[self._normalize(name)]

    def names(self) -> list[str]:
        """Registered names in registration order."""
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._normalize(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._items)})"
