"""The reparameterized clipping function (RCF), APoT's quantizer for weights and activations:

    x^ = alpha * Proj(clamp(x / alpha, lo, 1))

with Proj the nearest level and the straight-through estimator through it. Composed from torch
ops, autograd gives the paper's clipping-threshold gradient (quantizers.py's docstring).

Speed: for contiguous float32 CPU input and a 0-dim alpha, :class:`_RCF` runs the
whole expression as one compiled pass each way (``_kernel.c``) and reproduces, term by term, what
autograd computes through the composed expression: MulBackward, the STE's AddBackward,
ClampBackward and DivBackward. alpha's terms from the product and from the division are summed by
torch with ``sum_to_size``, as autograd does, and the two sums added: the same bits as the
composed expression (``tests/test_kernel.py``). Elsewhere the composed expression runs.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from qbench.api import project_ste

from . import kernel


class _RCF(torch.autograd.Function):
    """``(u + (Proj(u) - u)) * alpha``, ``u = clamp(x / alpha, lo, 1)``, in the compiled kernel."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, alpha: Tensor, levels: Tensor, lo: float) -> Tensor:
        ctx.save_for_backward(x, alpha, levels)
        ctx.lo = lo
        return kernel.forward(x, float(alpha), lo, levels)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, alpha, levels = ctx.saved_tensors
        grad_x, t_mul, t_div = kernel.backward(x, float(alpha), ctx.lo, levels, grad.contiguous())
        grad_alpha = None
        if ctx.needs_input_grad[1]:
            grad_alpha = t_mul.sum_to_size(alpha.shape) + t_div.sum_to_size(alpha.shape)
        return (grad_x if ctx.needs_input_grad[0] else None), grad_alpha, None, None


def rcf_quantize(x: Tensor, alpha: Tensor, levels: Tensor, signed: bool) -> Tensor:
    """alpha * Proj(clamp(x / alpha)) with the STE through Proj (the paper's RCF)."""
    lo = -1.0 if signed else 0.0
    if kernel.usable(x, alpha, levels) and not levels.requires_grad:
        return _RCF.apply(x, alpha, levels, lo)
    u = torch.clamp(x / alpha, lo, 1.0)
    return project_ste(u, levels) * alpha
