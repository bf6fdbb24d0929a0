"""The training-wrapper contract: what computes a QAT step's loss.

A wrapper sees the quantized model and the frozen FP model, so it can distil (KD), replace
blocks (BWRF) or add terms, while the quantizer and allocator stay whatever the method says.
"""
from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn


class TrainingWrapper:
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
