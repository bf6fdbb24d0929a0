# Frozen copy of qbench_n2uq/function.py before its faster search (qbench commit 0bf46f0):
# the reference tests/test_frozen_reference.py pins the faster code against, bit for bit.
"""The N2UQ core map and its generalized straight-through estimator (GSTE).

Liu et al. (CVPR 2022) place 2^b - 1 learnable thresholds on the input axis and output uniform
levels: the output is ``k * 2 / (2^b - 1)`` where k is the number of thresholds crossed, so the
output grid is uniform on [0, 2] while the input grid is not.

Parametrisation (the paper's): an offset t0 and widths a_1..a_n > 0 (n = 2^b - 1) define segment
boundaries t_i = t0 + a_1 + ... + a_i (t_0 = t0) and thresholds at the segment midpoints,
T_1 = t0 + a_1/2, T_{i+1} = T_i + (a_i + a_{i+1})/2.

Backward (GSTE): the hard staircase is replaced by the piecewise-linear map
F(x) = step * (i - 1 + u_i) on segment i, u_i = (x - t_{i-1}) / a_i in [0, 1), step = 2/n,
and F is constant (0 or 2) outside [t0, t_n]. Its derivatives, used as the gradients, are:

* dF/dx = step / a_i on segment i (the paper's slope), 0 outside;
* w.r.t. the boundaries: dF/dt_{i-1} = step (u_i - 1) / a_i and dF/dt_i = -step u_i / a_i,
  which through t_j = t0 + sum_{m<=j} a_m give
  dF/dt0 = -step / a_i, dF/da_j = -step / a_i for j < i, dF/da_i = -step u_i / a_i,
  dF/da_j = 0 for j > i; all zero outside [t0, t_n].

The autograd function below takes the boundaries t_0..t_n, so autograd applies the chain rule to
t0 and the widths (and to whatever keeps the widths positive). It stores the input and a 16-bit
level index, so its memory does not grow with the number of levels.
"""
from __future__ import annotations

import torch
from torch import Tensor


def segment_boundaries(t0: Tensor, widths: Tensor) -> Tensor:
    """t_0..t_n = t0 + [0, a_1, a_1 + a_2, ...] (differentiable in t0 and the widths)."""
    zero = torch.zeros(1, dtype=widths.dtype, device=widths.device)
    return t0 + torch.cat([zero, torch.cumsum(widths, 0)])


def thresholds_from_boundaries(bounds: Tensor) -> Tensor:
    """T_i = midpoint of segment i: T_1 = t0 + a_1/2, T_{i+1} = T_i + (a_i + a_{i+1})/2."""
    return 0.5 * (bounds[:-1] + bounds[1:])


class _N2UQMap(torch.autograd.Function):
    """Forward: k * step with k = #thresholds <= x. Backward: the GSTE (module docstring).

    One ``searchsorted`` over the interleaved sorted points t_0, T_1, t_1, ..., T_n, t_n gives
    both the output level and the segment: for t-or-T[j-1] <= x < t-or-T[j], k = j // 2
    thresholds lie at or below x and x is on segment (j + 1) // 2 (1-based; inside iff
    1 <= j <= 2n). Only x and that small integer index are saved for the backward.
    """

    @staticmethod
    def forward(ctx, x: Tensor, bounds: Tensor, step: float) -> Tensor:  # type: ignore[override]
        bounds = bounds.to(x.dtype).contiguous()
        n = bounds.numel() - 1
        points = torch.stack([bounds[:-1], thresholds_from_boundaries(bounds)], 1).reshape(-1)
        points = torch.cat([points, bounds[-1:]])
        j = torch.searchsorted(points, x.reshape(-1), right=True)
        ctx.save_for_backward(x, bounds, j.to(torch.int16 if 2 * n + 1 < 2**15 else torch.int32))
        ctx.step = step
        return (torch.div(j, 2, rounding_mode="floor").to(x.dtype) * step).view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        x, bounds, j = ctx.saved_tensors
        step = ctx.step
        n = bounds.numel() - 1
        j = j.long()
        inside = (j >= 1) & (j <= 2 * n)
        seg = (torch.div(j + 1, 2, rounding_mode="floor") - 1).clamp_(0, n - 1)  # 0-based segment
        lo = bounds[seg]
        width = bounds[seg + 1] - lo
        g_slope = torch.where(inside, grad.reshape(-1) * step / width, torch.zeros((), dtype=grad.dtype))
        grad_x = g_slope.view_as(x) if ctx.needs_input_grad[0] else None
        grad_b = None
        if ctx.needs_input_grad[1]:
            u = (x.reshape(-1) - lo) / width
            grad_b = torch.zeros_like(bounds)
            grad_b.index_add_(0, seg, g_slope * (u - 1))
            grad_b.index_add_(0, seg + 1, -g_slope * u)
        return grad_x, grad_b, None


def n2uq_levels(x: Tensor, t0: Tensor, widths: Tensor) -> Tensor:
    """The N2UQ map of ``x``: uniform outputs k * 2/n on [0, 2], n = len(widths) thresholds.

    :param x: input (already divided by any input scale).
    :param t0: start of the first segment (scalar tensor).
    :param widths: a_1..a_n, all > 0 (the caller keeps them positive).
    """
    n = widths.numel()
    return _N2UQMap.apply(x, segment_boundaries(t0, widths), 2.0 / n)
