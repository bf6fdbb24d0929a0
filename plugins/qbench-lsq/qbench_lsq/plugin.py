"""qbench registrations for LSQ: quantizers ``lsq-w`` / ``lsq-a`` and methods ``lsq``, ``lsq-pc``."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.api import Method

# The torch code is imported inside the hooks that register it: `qbench list methods` and
# `qbench plugins` load this module and call no other hook, so they run without torch.

PAPER = ("S. K. Esser, J. L. McKinstry, D. Bablani, R. Appuswamy, D. S. Modha. "
         "Learned Step Size Quantization. ICLR 2020 (arXiv 1902.08153).")

#: The paper's method: one learned step per weight tensor and per layer input.
LSQ = Method(
    name="lsq", version=1, weight_quantizer="lsq-w", activation_quantizer="lsq-a",
    allocator="fixed", wrapper="plain",
    params={"weight": {"per_channel": False}, "activation": {"signed": None}},
    description="LSQ: learned step sizes, per-tensor weights, paper's gradient rule.",
    paper=PAPER)

#: A common variant: one learned step per output channel of the weight.
LSQ_PC = LSQ.compose(
    "lsq-pc", params={"weight": {"per_channel": True}},
    description="LSQ with per-output-channel weight step sizes (not in the paper).")


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    from .quantizers import LSQActivationQuantizer, LSQWeightQuantizer

    register("lsq-w", LSQWeightQuantizer,
             description="LSQ weights: signed uniform levels, learned step (per tensor or per channel).")
    register("lsq-a", LSQActivationQuantizer,
             description="LSQ activations: unsigned (or signed) uniform levels, learned step.")


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(LSQ)
    register(LSQ_PC)
