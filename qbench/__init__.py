"""qbench: compare quantization-aware-training methods fairly, on one frozen recipe.

The host defines hook specifications (:mod:`qbench.plugin.hookspecs`); every method, dataset, model
and executor, including the ones shipped here, arrives through those hooks. Plugins import from
:mod:`qbench.api` (and :mod:`qbench.testing` in their tests), nothing else.
"""
from __future__ import annotations

import pluggy

__version__ = "0.2.0"

#: Marker plugins use to implement qbench hooks: ``@qbench.hookimpl``.
hookimpl = pluggy.HookimplMarker("qbench")

__all__ = ["__version__", "hookimpl"]

from qbench import compat as _compat  # noqa: E402  (old module paths of 0.1 keep working)

_compat.install()
