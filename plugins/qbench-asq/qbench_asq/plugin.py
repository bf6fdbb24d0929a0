"""qbench hooks: the ``asq-a``, ``post-w`` and ``asq-w`` quantizers and the ``asq`` method.

The two quantizers are registered separately so other methods (e.g. a BWRF wrapper around ASQ,
or LSQ weights with ASQ activations) can use either one by name.
"""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.api import Method

# The torch code is imported inside the hooks that register it: `qbench list methods` and
# `qbench plugins` load this module and call no other hook, so they run without torch.

PAPER = ("Zhou et al., Precision Neural Network Quantization via Learnable Adaptive Modules "
         "(ASQ + POST), arXiv 2504.17263, 2025")

ASQ = Method(
    name="asq", version=3, weight_quantizer="asq-w", activation_quantizer="asq-a",
    allocator="fixed", wrapper="plain",
    params={"weight": {"scheme": "paper", "drop": "negative", "init_quantile": 0.99, "grad_scale": True,
                       "lsq_per_channel": True},
            "activation": {"reduction": 4, "init_std": 0.01, "beta_min": 1e-8, "adapter": True,
                           "detach_adapter_input": False, "grad_count": "batch"}},
    description="ASQ activations (LSQ step times a per-sample adapter factor) with POST power-of-sqrt(2) "
                "weights from 3 bits and per-channel LSQ weights (lsq-w) below, as the authors' code pairs "
                "them; CE loss.",
    paper=PAPER)


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    from .asq import ASQActQuantizer
    from .post import POSTWeightQuantizer
    from .weights import asq_weight_quantizer

    register("asq-a", ASQActQuantizer,
             description="ASQ: LSQ step s times a per-sample adapter factor beta(x) (runs at inference too).")
    register("post-w", POSTWeightQuantizer,
             description="POST: per-channel alpha times power-of-sqrt(2) levels from a LUT (2^b levels).")
    register("asq-w", asq_weight_quantizer, kind="weight",
             description="ASQ's weights by bits: POST from 3 bits, LSQ (lsq-w, per channel) below; scheme= "
                         "post | lsq for one of them at every bit-width.")


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(ASQ)
