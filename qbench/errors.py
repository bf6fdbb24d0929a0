"""User-facing errors.

Every error a user can cause by what they type or write in a suite file is a :class:`QbenchError`:
the CLI prints its message (which names the thing, the problem and the fix) and exits non-zero,
without a traceback. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class QbenchError(Exception):
    """An error caused by input: a name, a value, a file. Its message is shown as is."""


class UnknownNameError(QbenchError, KeyError):
    """A name that is not registered. The message suggests the closest registered names."""

    def __init__(self, kind: str, name: str, available: Iterable[str], hint: str = "") -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        close = difflib.get_close_matches(name, self.available, n=3, cutoff=0.5)
        msg = f"Unknown {kind} {name!r}."
        if close:
            msg += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        shown = self.available[:25]
        more = f" (+{len(self.available) - 25} more)" if len(self.available) > 25 else ""
        msg += " Available: " + (", ".join(shown) + more if shown else "(none installed)") + "."
        if hint:
            msg += " " + hint
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class PluginError(QbenchError):
    """A plugin broke the contract (bad registration, failing hook). Names the plugin and hook."""
