"""Registers DoReFa's quantizers (dorefa-w, dorefa-a) and the method ``dorefa``."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.api import Method

# The torch code is imported inside the hooks that register it: `qbench list methods` and
# `qbench plugins` load this module and call no other hook, so they run without torch.

PAPER = ("Zhou et al., DoReFa-Net: Training Low Bitwidth Convolutional Neural Networks with Low "
         "Bitwidth Gradients, arXiv 1606.06160, 2016")

DOREFA = Method(
    name="dorefa", version=2, weight_quantizer="dorefa-w", activation_quantizer="dorefa-a",
    allocator="fixed", wrapper="plain",
    params={"weight": {"binary": "mean", "scale": "max_abs"}, "activation": {"signed": None}},
    description="DoReFa weights (tanh + max normalisation, 2^k levels in [-1, 1] times the layer's "
                "FP max|w|) and DoReFa "
                "activations (clip to [0, 1], quantize_k), STE.",
    paper=PAPER)


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    from .quantizers import DoReFaActQuantizer, DoReFaWeightQuantizer

    register("dorefa-w", DoReFaWeightQuantizer,
             description="DoReFa weights: 2 quantize_k(tanh w / (2 max|tanh w|) + 1/2) - 1 (STE).")
    register("dorefa-a", DoReFaActQuantizer,
             description="DoReFa activations: quantize_k(clip(x, 0, 1)); symmetric on [-1, 1] when signed.")


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(DOREFA)
