"""The fixed allocator: every quantized body layer gets the suite's target bits."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.contract.allocation import AllocationContext, BitAllocator
from qbench.contract.bits import BitTarget, LayerBits
from qbench.contract.layer_info import LayerInfo


class FixedAllocator(BitAllocator):
    """Uniform precision: W and A bits of the target for every body layer."""

    def allocate(self, layers: list[LayerInfo], target: BitTarget, ctx: AllocationContext) -> dict[str, LayerBits]:
        return {layer.name: LayerBits(target.w, target.a) for layer in layers}


@hookimpl
def qbench_register_bit_allocators(register: Callable[..., None]) -> None:
    register("fixed", FixedAllocator, description="Every quantized layer gets the target bits.")
