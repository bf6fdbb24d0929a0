"""Registers the ``adaqat`` bit-allocator and the method ``adaqat``.

The method follows the paper: DoReFa weights (``dorefa-w`` from qbench-dorefa), PACT activations
(``pact-a`` from qbench-pact), bit-widths learned by the allocator, plain cross-entropy.
"""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.api import Method

# The torch code is imported inside the hooks that register it: `qbench list methods` and
# `qbench plugins` load this module and call no other hook, so they run without torch.

PAPER = ("Gernigon, Filip, Sentieys, Coggiola, Bruno, AdaQAT: Adaptive Bit-Width Quantization-Aware "
         "Training, IEEE AICAS 2024, arXiv 2404.16876")

ADAQAT = Method(
    name="adaqat", version=4, weight_quantizer="dorefa-w", activation_quantizer="pact-a",
    allocator="adaqat", wrapper="plain",
    # DoReFa weights at the layer's FP scale (qbench-dorefa README: "Weight scale")
    params={"weight": {"binary": "mean", "scale": "max_abs"},
            "activation": {"init_alpha": "mse", "alpha_decay": 5e-4, "signed": None},
            "allocator": {"lam": 0.02, "eta": 0.1, "granularity": "network", "update_every": 1,
                          "init_w": None, "init_a": None, "freeze_after": 10, "min_bits": 1.5,
                          "base_loss": "recompute", "budget": "hold"}},
    description="Learned bit-widths N_w, N_a (ceil for every op) by finite differences plus a "
                "lambda * BitOPs term; DoReFa weights, PACT activations.",
    paper=PAPER)


@hookimpl
def qbench_register_bit_allocators(register: Callable[..., None]) -> None:
    from .allocator import AdaQATAllocator

    register("adaqat", AdaQATAllocator,
             description="AdaQAT: real-valued bit-widths learned during QAT by finite differences (ceil).")


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(ADAQAT)
