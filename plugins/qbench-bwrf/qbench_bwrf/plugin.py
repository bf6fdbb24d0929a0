"""Registers the ``bwrf`` training wrapper and the ``bwrf`` method (LSQ quantizers + BWRF)."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.api import Method

# The torch code is imported inside the hooks that register it: `qbench list methods` and
# `qbench plugins` load this module and call no other hook, so they run without torch.

PAPER = ("Yu et al., Improving Quantization-aware Training of Low-Precision Network via Block Replacement "
         "on Full-Precision Counterpart, arXiv 2412.15846, 2024")

#: The wrapper's defaults, written out so that they are part of the method's job hash. The paper
#: gives no distillation temperature or weights; T = 1 is measured (README, "Distillation").
WRAPPER_PARAMS = {"reading": "progressive", "granularity": "block", "num_mp": None, "temperature": 1.0,
                  "w_ce_lp": 1.0, "w_kd_fp_lp": 1.0, "w_ce_mp": 1.0, "w_kd_fp_mp": 1.0, "w_kd_mp_lp": 1.0,
                  "mp_reduction": "mean", "mp_bn_update": False}

BWRF = Method(
    name="bwrf", version=2, weight_quantizer="lsq-w", activation_quantizer="lsq-a", allocator="fixed",
    wrapper="bwrf", params={"wrapper": WRAPPER_PARAMS}, paper=PAPER,
    description="LSQ weights and activations trained with BWRF: mixed-precision models made by swapping "
                "low-precision blocks into the frozen FP model, with KD from FP and MP branches.")


@hookimpl
def qbench_register_training_wrappers(register: Callable[..., None]) -> None:
    from .wrapper import BWRFWrapper

    register("bwrf", BWRFWrapper,
             description="Block-wise replacement into the frozen FP model (mixed-precision branches + KD); "
                         "wraps any quantizer.")


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(BWRF)
