"""Names a package exports, imported on first use (PEP 562): importing the package stays cheap.

Why: ``qbench --help`` and ``qbench list methods`` import :mod:`qbench.api` and every installed
plugin's entry module. If those imported torch (3 s) and timm (3 s) on the way, a command that
prints a few lines would take seconds. With :func:`lazy_exports`, ``from qbench.api import Method``
imports the one module that defines ``Method``; ``from qbench.api import WeightQuantizer`` imports
torch, as it must. A plugin package can export its names the same way (docs/plugin-contract.md,
"Listing without importing torch").
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, Sequence[str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for a module that re-exports names lazily
    (PEP 562): a plugin's ``__init__.py`` exports its classes without importing torch when its
    entry point is loaded, e.g. by ``qbench list methods``.

    Use it in place of ``from .quantizers import A, B`` lines::

        __getattr__, __dir__, __all__ = lazy_exports(__name__, {".quantizers": ["A", "B"]})

    :param package: the exporting module's ``__name__``; relative module names (``".quantizers"``)
        resolve against it, so use them in a package's ``__init__.py`` only.
    :param exports: module (absolute, or relative such as ``".quantizers"``) -> the names it
        provides. A name is imported from its module on first access and then cached in the
        exporting module, so later accesses cost nothing; ``from pkg import *`` imports them all.
    :returns: the module-level ``__getattr__`` and ``__dir__`` functions, and ``__all__`` (every
        exported name, in the order given).
    """
    where = {name: module for module, names in exports.items() for name in names}
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__, list(where)
