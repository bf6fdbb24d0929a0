"""Registers PACT's activation quantizer (pact-a) and the method ``pact`` (DoReFa weights).

The PACT paper quantizes weights with DoReFa and activations with PACT; the method does the same,
reusing ``dorefa-w`` from qbench-dorefa (a declared dependency).
"""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.api import Method

# The torch code is imported inside the hooks that register it: `qbench list methods` and
# `qbench plugins` load this module and call no other hook, so they run without torch.

PAPER = ("Choi et al., PACT: Parameterized Clipping Activation for Quantized Neural Networks, "
         "arXiv 1805.06085, 2018")

PACT = Method(
    name="pact", version=3, weight_quantizer="dorefa-w", activation_quantizer="pact-a",
    allocator="fixed", wrapper="plain",
    # DoReFa weights at the layer's FP scale (qbench-dorefa README: "Weight scale")
    params={"weight": {"binary": "mean", "scale": "max_abs"},
            "activation": {"init_alpha": "mse", "alpha_decay": 5e-4, "signed": None}},
    description="PACT activations (learnable clip alpha, L2 on alpha) with DoReFa weights, as in the PACT paper.",
    paper=PAPER)


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    from .quantizers import PACTActQuantizer

    register("pact-a", PACTActQuantizer,
             description="PACT: clip(x, 0, alpha) with learnable alpha, 2^k uniform levels (STE).")


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(PACT)
