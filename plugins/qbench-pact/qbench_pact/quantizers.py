"""PACT: parameterized clipping activation (Choi et al., 2018, arXiv 1805.06085).

    y   = clip(x, 0, alpha)
    y_q = round(y (2^k - 1) / alpha) alpha / (2^k - 1)

with a learnable clipping level alpha per layer and the paper's straight-through gradients

    d y_q / d x     = 1[0 <= x <= alpha]
    d y_q / d alpha = 1[x >= alpha]

(the rounding, and alpha's role in the step size, are both treated as identity, as in the paper).
They are written out in a custom autograd function so that they hold exactly. PACT regularises
alpha with an L2 penalty: the quantizer declares it to the host's optimizer as alpha's weight decay
(``optim_specs``: ``{"alpha": OptimSpec(weight_decay=alpha_decay)}``), which adds
``alpha_decay * alpha`` to alpha's gradient once per step.

Choices where the paper is silent (also in the README):

* signed inputs: not specified by the paper; qbench uses y = clip(x, -alpha, alpha) quantized to
  2^k levels evenly spread over [-alpha, alpha] (every code used, zero not a level), with
  d/dx = 1[-alpha <= x <= alpha] and d/dalpha = 1[x >= alpha] - 1[x <= -alpha].
* alpha's initial value: the paper trains from scratch and starts alpha at 10. qbench fine-tunes
  from an FP checkpoint, so the default ``init_alpha="mse"`` sets alpha to the value minimising
  the quantization MSE of the first calibration batch (100 candidates in (0, max|x|]) at the
  quantizer's initial bits; ``init_alpha=10.0`` (any number) gives the paper's fixed start,
  ``"max"`` uses max|x|.
* calibration batch: alpha must come from activations as training sees them. With BatchNorm in
  eval mode (FP running statistics) DoReFa weights change every layer's scale, and an alpha from
  such a batch is wrong (measured on ResNet-20: alphas of 2 to 90 growing with depth, all-zero
  2-bit activations, overflowing gradients). qbench's host calibrates in training mode with BN
  statistics frozen, so there the first init is final. For an init made in eval mode elsewhere,
  ``calibrate="train"`` (default) treats it as provisional and recomputes alpha once, on the
  first training-mode forward; ``calibrate="first"`` keeps it.
* the MSE search runs on at most 65536 values of the batch, a seeded random draw (the host's
  :func:`qbench.contract.quant.calibration.calibration_sample`).
* alpha_decay: the paper's coefficient per experiment is not reproduced here; qbench uses 5e-4
  (the quick suite's weight decay).
* alpha is clamped at >= ``min_alpha`` (1e-3) inside the forward to keep the step size positive.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from qbench.api import ActivationQuantizer, OptimSpec, calibration_sample, clip_grid, mse_search

ALPHA_INITS = ("mse", "max")
CALIBRATE = ("train", "first")


def pact_quantize(x: Tensor, alpha: Tensor, n: int, signed: bool) -> Tensor:
    """The PACT forward without gradients: clip and quantize to n + 1 levels."""
    if signed:
        y = torch.maximum(torch.minimum(x, alpha), -alpha)
        step = 2 * alpha / n
        return torch.round((y + alpha) / step) * step - alpha
    y = torch.minimum(torch.clamp(x, min=0), alpha)
    step = alpha / n
    return torch.round(y / step) * step


class PACTFunction(torch.autograd.Function):
    """PACT with the paper's exact straight-through gradients (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, alpha: Tensor, n: int, signed: bool, min_alpha: float) -> Tensor:
        a = alpha.clamp(min=min_alpha).to(x.dtype)
        upper = x >= a
        if signed:
            lower = x <= -a
            inside = (x >= -a) & (x <= a)
        else:
            lower = torch.zeros((), dtype=torch.bool, device=x.device)
            inside = (x >= 0) & (x <= a)
        ctx.save_for_backward(inside, upper, lower)
        ctx.signed = signed
        ctx.alpha_shape = alpha.shape
        return pact_quantize(x, a, n, signed)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        inside, upper, lower = ctx.saved_tensors
        gx = g * inside.to(g.dtype) if ctx.needs_input_grad[0] else None
        ga = None
        if ctx.needs_input_grad[1]:
            ga = (g * upper.to(g.dtype)).sum()
            if ctx.signed:
                ga = ga - (g * lower.to(g.dtype)).sum()
            ga = ga.reshape(ctx.alpha_shape)
        return gx, ga, None, None, None


class PACTActQuantizer(ActivationQuantizer):
    """PACT activations: learnable clip level alpha, 2^k uniform levels on [0, alpha].

    :param bits: k (read at every forward; an allocator such as AdaQAT may change it).
    :param layer: unused.
    :param init_alpha: "mse" (default; not the paper's), "max", or a number (the paper: 10).
    :param alpha_decay: L2 coefficient on alpha: alpha's weight decay in the host's optimizer
        (:meth:`optim_specs`), i.e. ``grad += alpha_decay * alpha`` at every step.
    :param signed: force the signed/unsigned variant; ``None`` decides from the first batch.
    :param min_alpha: lower bound on alpha inside the forward.
    :param calibrate: "train" (default): an init from an eval-mode batch is redone once on the
        first training-mode forward; "first": keep the first batch's init.
    """

    def __init__(self, bits: int, layer: nn.Module | None = None, init_alpha: float | str = "mse",
                 alpha_decay: float = 5e-4, signed: bool | None = None, min_alpha: float = 1e-3,
                 calibrate: str = "train") -> None:
        super().__init__(bits, signed)  # the host decides and saves signedness
        if isinstance(init_alpha, str) and init_alpha not in ALPHA_INITS:
            raise ValueError(f"pact-a: init_alpha must be a number or one of {ALPHA_INITS}, got {init_alpha!r}")
        if calibrate not in CALIBRATE:
            raise ValueError(f"pact-a: calibrate must be one of {CALIBRATE}, got {calibrate!r}")
        self.init_alpha = init_alpha
        self.calibrate = calibrate
        self.alpha_decay = float(alpha_decay)
        self.min_alpha = float(min_alpha)
        start = 10.0 if isinstance(init_alpha, str) else float(init_alpha)
        self.alpha = nn.Parameter(torch.tensor(start))
        # True once alpha comes from a batch as training sees it (or needs no batch)
        self.register_buffer("alpha_settled", torch.tensor(False))
        if self.alpha_decay < 0:
            raise ValueError(f"pact-a: alpha_decay must be >= 0, got {alpha_decay}")

    # -- the L2 penalty on alpha ---------------------------------------------------------------
    def optim_specs(self) -> dict[str, OptimSpec]:
        """PACT's L2 penalty on alpha, as alpha's weight decay (the recipe's lr)."""
        return {"alpha": OptimSpec(weight_decay=self.alpha_decay)}

    # -- initialisation ------------------------------------------------------------------------
    def init_from(self, t: Tensor) -> None:
        settled = self.training or self.calibrate == "first" or not isinstance(self.init_alpha, str)
        self.alpha_settled.fill_(settled)
        if isinstance(self.init_alpha, str):
            self._calibrate(t)

    def _calibrate(self, t: Tensor) -> None:
        """alpha from a batch: max, or the quantization-MSE-best of 100 candidates in (0, max]."""
        signed = self.signed
        top = float(t.abs().max() if signed else t.clamp(min=0).max())
        if top <= 0:
            self.alpha.fill_(1.0)
            return
        if self.init_alpha == "max":
            self.alpha.fill_(top)
            return
        n = 2**self.bits - 1
        self.alpha.fill_(mse_search(calibration_sample(t), lambda x, c: pact_quantize(x, c, n, signed),
                                    clip_grid(top, 100)))

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        if not self.is_initialized:
            self.initialize(x)
        elif self.training and not self.device_flag("alpha_settled"):  # read back once, then held in Python
            with torch.no_grad():
                self._calibrate(x.detach())
            self.set_device_flag("alpha_settled")
        return PACTFunction.apply(x, self.alpha, 2**self.bits - 1, self.signed, self.min_alpha)

    def learned_state(self) -> dict[str, float]:
        """The clipping level alpha in the input's units, as the forward uses it (max(alpha,
        min_alpha)): the levels run over [0, alpha], or [-alpha, alpha] when signed."""
        return {"alpha": float(self.alpha.detach().clamp(min=self.min_alpha))}

    def extra_repr(self) -> str:
        return f"bits={self.bits}, alpha={float(self.alpha.detach()):.4g}, signed={self.signed}"
