"""qbench registrations for ADQ: ``adq-w``, allocator ``adq-sensitivity``, method ``adq``.

Activations reuse ``n2uq-a`` from qbench-n2uq through the registry (by name only).
"""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.api import Method

# The torch code is imported inside the hooks that register it: `qbench list methods` and
# `qbench plugins` load this module and call no other hook, so they run without torch.

PAPER = ("Jia et al. ADQ: Adaptive Distribution-aware Quantization for mixed-precision "
         "quantization-aware training. arXiv 2510.19760, 2025.")

ADQ = Method(
    name="adq", version=4, weight_quantizer="adq-w", activation_quantizer="n2uq-a",
    allocator="adq-sensitivity", wrapper="kd",
    params={"weight": {"momentum": 0.9, "split": "symmetric", "probs": "bin-mean", "ema": True},
            # n2uq-a's defaults (v3: thresholds on the unscaled GSTE gradient), written out
            "activation": {"threshold_grad_scale": "none"},
            # candidates straddle every budget the suites use (W2 included): mixed precision
            "allocator": {"candidates": [1, 2, 3, 4, 5, 6, 8], "budget": None, "enforce": "both"},
            # not specified by the paper; qbench uses the host's logit KD at these values
            "wrapper": {"alpha": 0.5, "temperature": 4.0}},
    description="ADQ: quantile-initialised EMA codebook weights, N2UQ activations, "
                "Fisher x error bit allocation under the bits and BitOPs budget, logit KD.",
    paper=PAPER)


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    from .quantizers import ADQWeightQuantizer

    register("adq-w", ADQWeightQuantizer,
             description="ADQ weights: per-layer quantile-initialised codebook, EMA-adapted, nearest codeword + STE.")


@hookimpl
def qbench_register_bit_allocators(register: Callable[..., None]) -> None:
    from .allocator import ADQSensitivityAllocator

    register("adq-sensitivity", ADQSensitivityAllocator,
             description="Fisher x quantisation-error sensitivity, greedy bits under the bits and BitOPs budget.")


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(ADQ)
