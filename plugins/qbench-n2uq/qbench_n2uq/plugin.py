"""qbench registrations for N2UQ: activation quantizer ``n2uq-a`` and method ``n2uq``."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.api import Method

# The torch code is imported inside the hooks that register it: `qbench list methods` and
# `qbench plugins` load this module and call no other hook, so they run without torch.

PAPER = ("Z. Liu, K.-T. Cheng, D. Huang, E. Xing, Z. Shen. Nonuniform-to-Uniform Quantization: "
         "Towards Accurate Quantization via Generalized Straight-Through Estimation. CVPR 2022.")

#: N2UQ baseline: learned-threshold activations; uniform weights with a learned scale (``lsq-w``
#: from qbench-lsq, one scale per tensor: the weight quantizer's details are not specified in
#: qbench's method facts; qbench uses LSQ). Plain cross-entropy (the paper's training recipe is
#: not part of the benchmark's fixed recipe).
N2UQ = Method(
    name="n2uq", version=3, weight_quantizer="lsq-w", activation_quantizer="n2uq-a",
    allocator="fixed", wrapper="plain",
    params={"weight": {"per_channel": False},
            "activation": {"signed": None, "learn_scale": True, "rescale_output": True,
                           "init": "mse", "grad_scale": "lsq", "threshold_grad_scale": "none",
                           "min_width": 1e-3}},
    description="N2UQ: learned non-uniform activation thresholds with uniform output levels "
                "(generalized STE); LSQ uniform weights.",
    paper=PAPER)


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    from .quantizers import N2UQActivationQuantizer

    register("n2uq-a", N2UQActivationQuantizer,
             description="N2UQ activations: learned thresholds, uniform output levels, generalized STE.")


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(N2UQ)
