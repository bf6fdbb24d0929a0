"""qbench hooks: the ``apot-w`` / ``apot-a`` quantizers and the ``apot`` method."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.api import Method

# The torch code is imported inside the hooks that register it: `qbench list methods` and
# `qbench plugins` load this module and call no other hook, so they run without torch.

APOT = Method(
    name="apot",
    version=2,
    weight_quantizer="apot-w",
    activation_quantizer="apot-a",
    allocator="fixed",
    wrapper="plain",
    params={"weight": {"alpha_init": 3.0, "rescale": "std", "clip_weight_grad": True,
                       "detach_stats": False},
            "activation": {"alpha_init": "mse", "signed": None}},
    description="APoT: additive powers-of-two levels, learnable clipping (RCF), weight normalisation.",
    paper="Li, Dong, Wang. Additive Powers-of-Two Quantization: An Efficient Non-uniform "
          "Discretization for Neural Networks. ICLR 2020 (arXiv 1909.13144).",
)


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    from .quantizers import ApotActQuantizer, ApotWeightQuantizer

    register("apot-w", ApotWeightQuantizer,
             description="APoT weights: normalised, clipped at alpha, levels +-sums of powers of two.")
    register("apot-a", ApotActQuantizer,
             description="APoT activations: clipped at alpha, levels sums of powers of two.")


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(APOT)
