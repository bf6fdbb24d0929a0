"""The LSQ fake-quantizer with the paper's gradient rule (Esser et al., ICLR 2020, eq. 1-3).

Forward:  v^ = round(clip(v / s, -Q_N, Q_P)) * s.

Backward (the paper's rule, written out as an ``autograd.Function`` rather than composed from
autograd ops so that the range test is explicit and happens on v/s BEFORE rounding):

* dv^/dv = 1 if -Q_N < v/s < Q_P, else 0 (straight-through round, clipped outside);
* dv^/ds = -v/s + round(v/s) if -Q_N < v/s < Q_P; -Q_N if v/s <= -Q_N; Q_P if v/s >= Q_P;
  the step-size gradient is then multiplied by the gradient scale g.

Why not ``torch._fake_quantize_learnable_per_*_affine``: those give the same forward but test
the range AFTER rounding, so an input within half a step beyond a clip limit (e.g. v/s = Q_P + 0.3)
still passes gradient to v and gives s the "inside" gradient. The paper treats it as clipped;
qbench's ``lsq`` follows the paper (tests/test_function.py pins both behaviours).

Boundary convention: the paper's inequalities are strict for the inside case, so v/s exactly at
-Q_N or Q_P counts as outside (no gradient to v). qbench uses the same mask for v and s.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import kernel


class _LSQQuantize(torch.autograd.Function):
    """round(clip(x/s, -q_n, q_p)) * s with LSQ's gradients; ``s`` broadcasts against ``x``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, s: Tensor, q_n: int, q_p: int, g: float, eps: float) -> Tensor:
        ctx.q_n, ctx.q_p, ctx.g, ctx.eps = q_n, q_p, g, eps
        ctx.s_shape = s.shape
        ctx.fast = kernel.usable(x, s)  # asked once: the backward takes the same path
        if ctx.fast:  # one compiled loop (it applies max(s, eps) itself), the same bits
            ctx.save_for_backward(x, s)
            return kernel.forward(x, s, float(-q_n), float(q_p), eps)
        s_eff = s.clamp_min(eps)
        ctx.save_for_backward(x, s_eff)
        return torch.round(torch.clamp(x / s_eff, -q_n, q_p)) * s_eff

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, s_eff = ctx.saved_tensors  # s itself on the kernel's path
        q_n, q_p = ctx.q_n, ctx.q_p
        if ctx.fast and grad_out.dtype == x.dtype and grad_out.is_contiguous():
            # one compiled loop for the masks, the input gradient and grad_out * ds (the same
            # bits); torch still sums the step's terms, in its own order
            grad_x, prod = kernel.backward(x, s_eff, grad_out, float(-q_n), float(q_p), ctx.eps)
            grad_s = prod.sum_to_size(ctx.s_shape) * ctx.g if ctx.needs_input_grad[1] else None
            return (grad_x if ctx.needs_input_grad[0] else None), grad_s, None, None, None, None
        if ctx.fast:
            s_eff = s_eff.clamp_min(ctx.eps)
        v = x / s_eff
        below = v <= -q_n
        above = v >= q_p
        grad_x = grad_s = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_out.masked_fill(below | above, 0.0)
        if ctx.needs_input_grad[1]:
            ds = (torch.round(v) - v).masked_fill_(below, -float(q_n)).masked_fill_(above, float(q_p))
            # The clamp_min(eps) guard is straight-through: s gets its gradient even below eps.
            grad_s = (grad_out * ds).sum_to_size(ctx.s_shape) * ctx.g
        return grad_x, grad_s, None, None, None, None


def lsq_quantize(x: Tensor, s: Tensor, q_n: int, q_p: int, g: float, eps: float = 1e-8) -> Tensor:
    """LSQ fake quantization of ``x`` with step ``s`` (per tensor, or broadcastable per channel).

    :param x: the tensor to quantize (weight or activation).
    :param s: the learnable step size; shape ``(1,)`` or broadcastable to ``x`` (e.g. ``(C,1,1,1)``).
    :param q_n: magnitude of the lowest integer level (levels are -q_n .. q_p).
    :param q_p: the highest integer level.
    :param g: gradient scale applied to the step-size gradient (LSQ: 1/sqrt(N * Q_P)).
    :param eps: the forward uses max(s, eps) so a step driven to 0 or below cannot divide by
        zero or flip signs (not specified by the paper; qbench uses 1e-8, straight-through).
    """
    return _LSQQuantize.apply(x, s, int(q_n), int(q_p), float(g), float(eps))
