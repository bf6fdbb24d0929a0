"""qbench hooks: the ``lsqplus-w`` / ``lsqplus-a`` quantizers and the ``lsqplus`` method."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.api import Method

# The torch code is imported inside the hooks that register it: `qbench list methods` and
# `qbench plugins` load this module and call no other hook, so they run without torch.

LSQPLUS = Method(
    name="lsqplus",
    version=2,
    weight_quantizer="lsqplus-w",
    activation_quantizer="lsqplus-a",
    allocator="fixed",
    wrapper="plain",
    params={"weight": {"per_channel": False, "init_stds": 3.0},
            "activation": {"init": "mse", "mse_steps": 200}},
    description="LSQ+: learnable step and offset (asymmetric activations), symmetric weights "
                "with the mean +- 3 std init; activations start from the paper's MSE init.",
    paper="Bhalgat, Lee, Nagel, Blankevoort, Kwak. LSQ+: Improving low-bit quantization through "
          "learnable offsets and better initialization. CVPR Workshops 2020 (arXiv 2004.09576).",
)


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    from .quantizers import LsqPlusActQuantizer, LsqPlusWeightQuantizer

    register("lsqplus-w", LsqPlusWeightQuantizer)
    register("lsqplus-a", LsqPlusActQuantizer)


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(LSQPLUS)
