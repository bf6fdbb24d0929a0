"""qbench hooks: the ``dgms-w`` weight quantizer and the methods ``dgms`` and ``dgms-paperlr``
(weights only, A32)."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.api import Method

from .quantizer import DGMSWeightQuantizer

PAPER = ("Dong et al., 'Finding the Task-Optimal Low-Bit Sub-Distribution in Deep Neural Networks', "
         "ICML 2022 (DGMS: Differentiable Gaussian Mixture weight Sharing)")

#: The quantizer defaults, written out so they are part of the method's job hash.
WEIGHT_PARAMS = {
    "tau": 0.01,            # paper / official default temperature
    "learn_tau": True,      # official code: the temperature is an nn.Parameter
    "sigma_init": "kmeans",  # cluster std; the official alternative is 0.01 for every sigma
    "chunk_size": 2**18,    # elements per K x n block (memory only; results unchanged)
    "chunked": True,
    "param_grad_scale": 1.0,  # no scaling: the paper has none (see README: lr 0.01 vs 2e-5)
}

DGMS = Method(
    name="dgms", version=1, weight_quantizer="dgms-w", activation_quantizer=None,
    allocator="fixed", wrapper="plain", params={"weight": dict(WEIGHT_PARAMS)},
    description="DGMS: per-layer Gaussian mixture (2^b components, one pinned at 0), soft "
                "temperature-softmax weights in training, MAP component at inference; weights only.",
    paper=PAPER)

#: The paper fine-tunes at lr 2e-5; every shipped suite's frozen QAT recipe uses 0.01. At 0.01 the
#: mixture means cross and components die (README, "Learning rate"), so a variant keeps the
#: mixture parameters at the paper's rate by scaling their gradients by the ratio.
PAPER_LR = 2e-5
SUITE_QAT_LR = 0.01

DGMS_PAPER_LR = Method(
    name="dgms-paperlr", version=1, weight_quantizer="dgms-w", activation_quantizer=None,
    allocator="fixed", wrapper="plain",
    params={"weight": {**WEIGHT_PARAMS, "param_grad_scale": PAPER_LR / SUITE_QAT_LR}},
    description="DGMS with its mixture parameters (means, sigmas, pi, tau) at the paper's lr: their "
                "gradients scaled by 2e-5 / 0.01 (the shipped suites' QAT lr); weights at the suite's lr.",
    paper=PAPER)


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    register("dgms-w", DGMSWeightQuantizer,
             description="DGMS Gaussian-mixture weight sharing: soft in training, MAP component in eval.")


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(DGMS)
    register(DGMS_PAPER_LR)
