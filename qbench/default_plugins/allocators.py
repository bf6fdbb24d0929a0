"""The fixed allocator: every quantized body layer gets the suite's target bits."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.lazy import lazy_exports

# the class's old home: qbench.default_plugins.allocators.FixedAllocator still resolves (no __dir__,
# so pluggy, which scans a plugin's dir(), never imports it while registering this module)
__getattr__ = lazy_exports(__name__, {"qbench.default_plugins.parts": ["FixedAllocator"]})[0]


@hookimpl
def qbench_register_bit_allocators(register: Callable[..., None]) -> None:
    from qbench.default_plugins.parts import FixedAllocator  # torch: only when allocators are asked for

    register("fixed", FixedAllocator, description="Every quantized layer gets the target bits.")
