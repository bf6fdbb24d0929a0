"""Plain task loss, and logit distillation from the frozen FP model."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qbench import hookimpl
from qbench.contract.wrappers import TrainingWrapper, kd_loss


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


@hookimpl
def qbench_register_training_wrappers(register: Callable[..., None]) -> None:
    register("plain", PlainWrapper, description="Cross-entropy on the quantized model.")
    register("kd", DistillWrapper, description="CE + logit distillation from the frozen FP model.")
