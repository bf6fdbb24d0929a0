"""qbench: compare quantization-aware-training methods fairly, on one frozen recipe.

The host defines hook specifications (:mod:`qbench.hookspecs`); every method, dataset, model and
executor, including the ones shipped here, arrives through those hooks.
"""
from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Marker plugins use to implement qbench hooks: ``@qbench.hookimpl``.
hookimpl = pluggy.HookimplMarker("qbench")

__all__ = ["__version__", "hookimpl"]
