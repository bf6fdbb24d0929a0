"""The built-in parts' torch code: the fixed allocator, the plain and kd training wrappers.

Kept apart from their plugin modules (allocators.py, wrappers.py), which import this module inside
their registration hooks: every command loads the default plugins, and most never use these
classes (``qbench --help``, ``qbench list methods``), so loading a plugin must not import torch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qbench.contract.allocation import AllocationContext, BitAllocator
from qbench.contract.bits import BitTarget, LayerBits
from qbench.contract.layer_info import LayerInfo
from qbench.contract.wrappers import TrainingWrapper, kd_loss


class FixedAllocator(BitAllocator):
    """Uniform precision: W and A bits of the target for every body layer."""

    def allocate(self, layers: list[LayerInfo], target: BitTarget, ctx: AllocationContext) -> dict[str, LayerBits]:
        return {layer.name: LayerBits(target.w, target.a) for layer in layers}


class PlainWrapper(TrainingWrapper):
    """Cross-entropy on the quantized model's logits."""

    def loss(self, qmodel: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(qmodel(x), y)


class DistillWrapper(TrainingWrapper):
    """(1 - alpha) * CE + alpha * T^2 KL(FP teacher || quantized student) on logits.

    :param alpha: weight of the distillation term.
    :param temperature: softmax temperature T.
    """

    def __init__(self, alpha: float = 0.5, temperature: float = 4.0) -> None:
        self.alpha = alpha
        self.temperature = temperature

    def loss(self, qmodel: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        logits = qmodel(x)
        with torch.no_grad():
            teacher = self.fp_model(x)
        return (1 - self.alpha) * F.cross_entropy(logits, y) + self.alpha * kd_loss(logits, teacher, self.temperature)
