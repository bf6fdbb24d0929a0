"""qbench hooks: the ``asq-a`` and ``post-w`` quantizers and the ``asq`` method.

The two quantizers are registered separately so other methods (e.g. a BWRF wrapper around ASQ,
or LSQ weights with ASQ activations) can use either one by name.
"""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.api import Method

from .asq import ASQActQuantizer
from .post import POSTWeightQuantizer

PAPER = ("Zhou et al., Precision Neural Network Quantization via Learnable Adaptive Modules "
         "(ASQ + POST), arXiv 2504.17263, 2025")

ASQ = Method(
    name="asq", version=2, weight_quantizer="post-w", activation_quantizer="asq-a",
    allocator="fixed", wrapper="plain",
    params={"weight": {"drop": "negative", "init_quantile": 0.99, "grad_scale": True},
            "activation": {"reduction": 4, "init_std": 0.01, "beta_min": 1e-8, "adapter": True,
                           "detach_adapter_input": False, "grad_count": "batch"}},
    description="POST power-of-sqrt(2) weights (LUT, per-channel alpha) + ASQ activations "
                "(LSQ step times a per-sample adapter factor); CE loss.",
    paper=PAPER)


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    register("asq-a", ASQActQuantizer,
             description="ASQ: LSQ step s times a per-sample adapter factor beta(x) (runs at inference too).")
    register("post-w", POSTWeightQuantizer,
             description="POST: per-channel alpha times power-of-sqrt(2) levels from a LUT (2^b levels).")


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(ASQ)
