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


#: Unknown-name errors list every available name up to this many; beyond it they count them.
LISTED = 30


def closest(name: str, available: list[str], n: int = 3) -> list[str]:
    """The names a typo most likely meant: difflib's closest, then names sharing the typed
    prefix or containing it (``vit_tiny`` -> ``vit_tiny_patch16_224``), case-insensitively."""
    key = name.lower()
    prefix = [a for a in available if a.lower().startswith(key)]
    lower = {a.lower(): a for a in available}
    fuzzy = [lower[c] for c in difflib.get_close_matches(key, list(lower), n=n, cutoff=0.6)]
    inside = [a for a in available if len(key) >= 3 and key in a.lower()]
    found: list[str] = []
    for a in prefix + fuzzy + inside:
        if a not in found:
            found.append(a)
    return found[:n]


class UnknownNameError(QbenchError, KeyError):
    """A name that is not registered. The message suggests the closest registered names."""

    def __init__(self, kind: str, name: str, available: Iterable[str], hint: str = "") -> None:
        self.kind = kind
        self.name = name
        self.available = sorted(available)
        close = closest(name, self.available)
        msg = f"Unknown {kind} {name!r}."
        if close:
            msg += " Did you mean " + " or ".join(repr(c) for c in close) + "?"
        if len(self.available) > LISTED:  # a long list (timm's 1,300 models) buries the fix: count it instead
            msg += f" {len(self.available)} {kind}s are available."
        else:
            msg += " Available: " + (", ".join(self.available) if self.available else "(none installed)") + "."
        if hint:
            msg += " " + hint
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class PluginError(QbenchError):
    """A plugin broke the contract (bad registration, failing hook). Names the plugin and hook."""
