"""qbench hooks: the ``dgms-w`` weight quantizer and the method ``dgms`` (weights only, A32)."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.api import Method

# The torch code is imported inside the functions that need it: `qbench plugins` loads this module
# without torch. `qbench list methods` does import torch here: dgms_method() loads the compiled
# kernel (kernel.py, after torch, whose OpenMP runtime it shares) to choose the method's params.

PAPER = ("Dong et al., 'Finding the Task-Optimal Low-Bit Sub-Distribution in Deep Neural Networks', "
         "ICML 2022 (DGMS: Differentiable Gaussian Mixture weight Sharing)")

#: The paper fine-tunes at lr 2e-5; every shipped suite's frozen QAT recipe uses 0.01. At 0.01 the
#: mixture means cross and components die (README, "Learning rate"), so the method declares the
#: mixture parameters' learning rate as the ratio (an OptimSpec; the latent weights keep the
#: suite's recipe).
PAPER_LR = 2e-5
SUITE_QAT_LR = 0.01

#: The quantizer defaults, written out so they are part of the method's job hash.
WEIGHT_PARAMS = {
    "tau": 0.01,            # paper / official default temperature
    "learn_tau": True,      # official code: the temperature is an nn.Parameter
    "sigma_init": "kmeans",  # cluster std; the official alternative is 0.01 for every sigma
    "chunk_size": 2**18,    # elements per K x n block (memory only; results unchanged)
    "chunked": True,
    "kernel": "c",          # v3: the compiled one-pass soft weight (7x faster; float32 rounding moves rows);
                            # "torch" where it cannot run (dgms_method)
    "mixture_lr_scale": PAPER_LR / SUITE_QAT_LR,  # the mixture at the paper's lr 2e-5
}

def dgms_method() -> Method:
    """Method ``dgms``, with the soft weight this machine can compute: ``kernel='c'`` where the
    compiled kernel loads (the published rows' keys), else ``kernel='torch'``.

    Decided here, where the method is registered in the planning process, rather than in the
    quantizer when a worker first trains: the choice moves rows within float32 rounding, so it is
    in the method's params, hence in the job key, and the job carries it to whatever process runs
    it. A worker that cannot load the kernel a job is keyed with fails naming the fix; it never
    runs the torch graph under the kernel's key.
    """
    from . import kernel

    kernel_name = "c" if kernel.available() else "torch"
    return Method(
        name="dgms", version=3, weight_quantizer="dgms-w", activation_quantizer=None,
        allocator="fixed", wrapper="plain", params={"weight": {**WEIGHT_PARAMS, "kernel": kernel_name}},
        description="DGMS: per-layer Gaussian mixture (2^b components, one pinned at 0), soft "
                    "temperature-softmax weights in training, MAP component at inference; weights only; "
                    "the mixture trains at the paper's lr (2e-5 = 0.002 x the suites' QAT lr).",
        paper=PAPER)


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    from .quantizer import DGMSWeightQuantizer

    register("dgms-w", DGMSWeightQuantizer,
             description="DGMS Gaussian-mixture weight sharing: soft in training, MAP component in eval.")


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(dgms_method())
