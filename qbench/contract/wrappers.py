"""The training-wrapper contract: what computes a QAT step's loss.

A wrapper sees the quantized model and the frozen FP model, so it can distil (KD), replace
blocks (BWRF) or add terms, while the quantizer and allocator stay whatever the method says.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch.nn.functional as F
from torch import Tensor, nn

from qbench.contract.optim import TrainedPart


class TrainingWrapper(TrainedPart):
    """Base class: plain task loss on the quantized model."""

    def setup(self, qmodel: nn.Module, fp_model: nn.Module) -> None:
        """Called once before training. ``fp_model`` is a frozen copy in eval mode."""
        self.qmodel = qmodel
        self.fp_model = fp_model

    def parameters(self) -> Iterable[nn.Parameter]:
        """Extra trainable parameters the wrapper owns (default none)."""
        return ()

    def loss(self, qmodel: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def eval_model(self, qmodel: nn.Module) -> nn.Module:
        """The model that is evaluated and deployed (the pure low-precision one)."""
        return qmodel


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """KL(teacher || student) at temperature T, scaled by T^2 (Hinton et al., 2015)."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, dim=1), F.softmax(teacher_logits / t, dim=1),
                    reduction="batchmean") * t * t
