"""Typed registries filled by the ``qbench_register_*`` hooks.

A registry maps a name to an entry and remembers which plugin registered it, so a duplicate name
or a broken entry can be blamed on the right package. Lookups of unknown names raise
:class:`~qbench.errors.UnknownNameError` with "did you mean" suggestions.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from qbench.errors import PluginError, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Registered(Generic[T]):
    """One registry entry: the object and the plugin that registered it."""

    name: str
    obj: T
    plugin: str


class Registry(Generic[T]):
    """Name -> object, with provenance and helpful errors.

    :param kind: what the entries are ("method", "quantizer", ...), used in messages.
    :param hint: appended to unknown-name errors, e.g. how to install more.
    """

    def __init__(self, kind: str, hint: str = "") -> None:
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, Registered[T]] = {}

    def add(self, name: str, obj: T, plugin: str = "?") -> None:
        """Register ``obj`` under ``name``; a second registration of one name is an error."""
        if not isinstance(name, str) or not name:
            raise PluginError(f"Plugin {plugin!r} registered a {self.kind} with an invalid name {name!r}; "
                              "names must be non-empty strings.")
        if name in self._entries:
            first = self._entries[name].plugin
            raise PluginError(f"{self.kind.capitalize()} {name!r} is registered twice: by plugin {first!r} "
                              f"and by plugin {plugin!r}. Uninstall or disable one of them "
                              "(QBENCH_DISABLED_PLUGINS).")
        self._entries[name] = Registered(name, obj, plugin)

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def entry(self, name: str) -> Registered[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries, self.hint) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Registered[T]]:
        return [self._entries[n] for n in self.names()]
