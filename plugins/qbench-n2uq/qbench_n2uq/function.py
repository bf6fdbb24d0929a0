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

from functools import lru_cache

import torch
from torch import Tensor

from qbench.api import count_at_or_below

from . import kernel


def segment_boundaries(t0: Tensor, widths: Tensor) -> Tensor:
    """t_0..t_n = t0 + [0, a_1, a_1 + a_2, ...] (differentiable in t0 and the widths)."""
    zero = torch.zeros(1, dtype=widths.dtype, device=widths.device)
    return t0 + torch.cat([zero, torch.cumsum(widths, 0)])


def thresholds_from_boundaries(bounds: Tensor) -> Tensor:
    """T_i = midpoint of segment i: T_1 = t0 + a_1/2, T_{i+1} = T_i + (a_i + a_{i+1})/2."""
    return 0.5 * (bounds[:-1] + bounds[1:])


def _tables(bounds: Tensor, step: float, x: Tensor) -> tuple[Tensor, Tensor]:
    """The sorted points t_0, T_1, t_1, ..., T_n, t_n and the output level of each index j,
    k * step with k = j // 2 (2n + 2 entries).

    Speed: the level table depends only on (n, step) and is kept; the points come
    from one compiled call where the kernel runs (the same operations: 0.5 * (t_i + t_{i+1})),
    rather than five small torch ops per call.
    """
    n = bounds.numel() - 1
    level = _level_table(n, float(step), x.dtype, str(x.device))
    if kernel.usable(x) and bounds.dtype == torch.float32 and bounds.device.type == "cpu":
        return kernel.points(bounds), level
    points = torch.stack([bounds[:-1], thresholds_from_boundaries(bounds)], 1).reshape(-1)
    return torch.cat([points, bounds[-1:]]), level


@lru_cache(maxsize=64)
def _level_table(n: int, step: float, dtype: torch.dtype, device: str) -> Tensor:
    """k * step for j = 0 .. 2n + 1, k = j // 2 (read only: callers must not write to it)."""
    return torch.div(torch.arange(2 * n + 2, device=device), 2, rounding_mode="floor").to(dtype) * step


class _N2UQMap(torch.autograd.Function):
    """Forward: k * step with k = #thresholds <= x. Backward: the GSTE (module docstring).

    One ``searchsorted`` over the interleaved sorted points t_0, T_1, t_1, ..., T_n, t_n gives
    both the output level and the segment: for t-or-T[j-1] <= x < t-or-T[j], k = j // 2
    thresholds lie at or below x and x is on segment (j + 1) // 2 (1-based; inside iff
    1 <= j <= 2n). Only x and that small integer index are saved for the backward.

    Speed: the search is :func:`qbench.api.count_at_or_below` (the same j as
    ``searchsorted``, from look-up tables); the output level, and in the backward each segment's
    start and width, come from tables of 2n + 2 and n entries computed with the same operations as
    the per-element expressions they replace (so the same values), gathered with ``index_select``;
    index arithmetic runs on 32-bit integers. The same numbers bit for bit
    (``tests/test_frozen_reference.py`` pins them against the code before). On float32 CPU
    tensors both directions run in the compiled loop of :mod:`qbench_n2uq.kernel` instead, again
    with the same bits (``tests/test_kernel.py``).
    """

    @staticmethod
    def forward(ctx, x: Tensor, bounds: Tensor, step: float) -> Tensor:  # type: ignore[override]
        bounds = bounds.to(x.dtype).contiguous()
        n = bounds.numel() - 1
        points, level = _tables(bounds, step, x)
        j_dtype = torch.int16 if 2 * n + 1 < 2**15 else torch.int32
        ctx.step = step
        if kernel.usable(x):  # the compiled loop: the same j and output, bit for bit
            out, j = kernel.forward(x, points, level, j_dtype)
            ctx.save_for_backward(x, bounds, j)
            return out.view_as(x)
        j = count_at_or_below(x.reshape(-1), points)  # = searchsorted(points, x, right=True), faster
        ctx.save_for_backward(x, bounds, j.to(j_dtype))
        return torch.index_select(level, 0, j).view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        x, bounds, j = ctx.saved_tensors
        step = ctx.step
        n = bounds.numel() - 1
        if kernel.usable(x) and grad.dtype == x.dtype:  # the compiled loop: the same gradients, bit for bit
            grad_x, grad_b = kernel.backward(x, j, bounds, bounds[1:] - bounds[:-1], step, grad,
                                             ctx.needs_input_grad[1])
            return (grad_x.view_as(x) if ctx.needs_input_grad[0] else None), grad_b, None
        j = j.to(torch.int32)
        inside = (j >= 1).logical_and_(j <= 2 * n)
        seg = torch.div(j + 1, 2, rounding_mode="floor").sub_(1).clamp_(0, n - 1)  # 0-based segment
        lo = torch.index_select(bounds[:-1], 0, seg)  # bounds[seg]
        width = torch.index_select(bounds[1:] - bounds[:-1], 0, seg)  # bounds[seg + 1] - bounds[seg]
        g_slope = torch.where(inside, grad.reshape(-1) * step / width, torch.zeros((), dtype=grad.dtype))
        grad_x = g_slope.view_as(x) if ctx.needs_input_grad[0] else None
        grad_b = None
        if ctx.needs_input_grad[1]:
            u = (x.reshape(-1) - lo) / width
            grad_b = torch.zeros_like(bounds)
            grad_b.index_add_(0, seg, g_slope * (u - 1))
            grad_b.index_add_(0, seg + 1, -g_slope * u)
        return grad_x, grad_b, None


class _N2UQActivation(torch.autograd.Function):
    """``n2uq-a``'s whole expression ``(map(x / s) - offset) * s`` (or without ``* s``) in one
    compiled pass each way, for float32 CPU input and a 0-dim step s: fewer passes, the same numbers.

    The backward reproduces what autograd computes through the composed expression, term by
    term: MulBackward (g1 = grad * s; the step's terms grad * y), the map's GSTE on g1, and
    DivBackward (grad_x = g_slope / s; the step's terms -g_slope * ((x / s) / s)). The step's
    terms are summed by torch with ``sum_to_size``, as autograd does, and the two sums added:
    the same bits as the composed expression (``tests/test_kernel.py``).
    """

    @staticmethod
    def forward(ctx, x: Tensor, s: Tensor, bounds: Tensor, step: float, offset: float,  # type: ignore[override]
                rescale: bool) -> Tensor:
        bounds = bounds.to(x.dtype).contiguous()
        n = bounds.numel() - 1
        points, level = _tables(bounds, step, x)
        out, j = kernel.act_forward(x, float(s), points, level, offset, rescale,
                                    torch.int16 if 2 * n + 1 < 2**15 else torch.int32)
        ctx.save_for_backward(x, s, bounds, j, level)
        ctx.step, ctx.offset, ctx.rescale = step, offset, rescale
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, s, bounds, j, level = ctx.saved_tensors
        grad_x, ts_div, ts_mul, grad_b = kernel.act_backward(
            x, float(s), j, bounds, bounds[1:] - bounds[:-1], ctx.step, level, ctx.offset, ctx.rescale,
            grad.contiguous(), ctx.needs_input_grad[2])
        grad_s = None
        if ctx.needs_input_grad[1]:
            div_part = ts_div.sum_to_size(s.shape)
            grad_s = div_part if ts_mul is None else ts_mul.sum_to_size(s.shape) + div_part
        return (grad_x if ctx.needs_input_grad[0] else None), grad_s, grad_b, None, None, None


def n2uq_activation(x: Tensor, s: Tensor, t0: Tensor, widths: Tensor, offset: float, rescale: bool) -> Tensor:
    """``(n2uq_levels(x / s, t0, widths) - offset) * s`` (or without ``* s``): fused into one
    compiled pass each way where the kernel applies (same bits), composed from torch ops otherwise."""
    if (kernel.usable(x) and s.dim() == 0 and s.dtype == x.dtype and x.is_contiguous()
            and x.numel() >= kernel.FUSED_MIN):
        n = widths.numel()
        return _N2UQActivation.apply(x, s, segment_boundaries(t0, widths), 2.0 / n, float(offset), bool(rescale))
    y = n2uq_levels(x / s, t0, widths) - offset
    return y * s if rescale else y


def n2uq_levels(x: Tensor, t0: Tensor, widths: Tensor) -> Tensor:
    """The N2UQ map of ``x``: uniform outputs k * 2/n on [0, 2], n = len(widths) thresholds.

    :param x: input (already divided by any input scale).
    :param t0: start of the first segment (scalar tensor).
    :param widths: a_1..a_n, all > 0 (the caller keeps them positive).
    """
    n = widths.numel()
    return _N2UQMap.apply(x, segment_boundaries(t0, widths), 2.0 / n)
