"""Plain task loss, and logit distillation from the frozen FP model."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.lazy import lazy_exports

# the classes' old home still resolves (no __dir__: pluggy scans a plugin's dir() when registering it)
__getattr__ = lazy_exports(__name__, {"qbench.default_plugins.parts": ["PlainWrapper", "DistillWrapper"]})[0]


@hookimpl
def qbench_register_training_wrappers(register: Callable[..., None]) -> None:
    from qbench.default_plugins.parts import DistillWrapper, PlainWrapper  # torch: only when wrappers are asked for

    register("plain", PlainWrapper, description="Cross-entropy on the quantized model.")
    register("kd", DistillWrapper, description="CE + logit distillation from the frozen FP model.")
