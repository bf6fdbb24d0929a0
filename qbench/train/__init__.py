"""The training core: model surgery, the QAT build (allocate, quantize, calibrate), the one
training loop, and the bit audit.

Above the plugin machinery (layers: docs/architecture.md): it uses the contracts and the catalog;
it never plans jobs or writes rows.
"""
from __future__ import annotations

import warnings
from typing import Any

#: Names ``qbench.train`` had when it was a module (before 0.2); they now live in ``qbench.train.loop``.
_MOVED = ("train", "evaluate", "frozen_bn_stats", "EpochStats")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(f"qbench.train.{name} moved: import it from qbench.api (or qbench.train.loop).",
                      DeprecationWarning, stacklevel=2)
        from qbench.train import loop
        return getattr(loop, name)
    raise AttributeError(f"module 'qbench.train' has no attribute {name!r}")
