"""Straight-through-estimator helpers: the shared plumbing of every uniform quantizer."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def round_ste(x: Tensor) -> Tensor:
    """round(x) in the forward pass, identity gradient in the backward pass: integer codes that
    training can differentiate through, e.g. ``round_ste(torch.clamp(w / s, -q_n, q_p)) * s``."""
    return x + (torch.round(x) - x).detach()


def floor_ste(x: Tensor) -> Tensor:
    """floor(x) in the forward pass, identity gradient in the backward pass (as :func:`round_ste`,
    for quantizers whose codes round down)."""
    return x + (torch.floor(x) - x).detach()


def grad_scale(x: Tensor, scale: float) -> Tensor:
    """Value of ``x`` forward, gradient multiplied by ``scale`` backward (LSQ's step-size trick):
    use the result in place of a learned step, ``s = grad_scale(self.step, lsq_grad_scale(n, q_p))``."""
    return (x - x * scale).detach() + x * scale


def lsq_grad_scale(numel: int, q_p: int) -> float:
    """LSQ's step-size gradient scale g = 1 / sqrt(N * Q_P) (Esser et al., 2020), for :func:`grad_scale`.

    :param numel: N, the values one step quantizes: ``w.numel()`` for a weight (per tensor), the
        elements of one sample (:func:`features_per_sample`) for an activation.
    :param q_p: the largest integer code, from :func:`int_range`.
    """
    return 1.0 / math.sqrt(max(numel * max(q_p, 1), 1))


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """(Q_N, Q_P): the 2^bits integer codes are -Q_N .. Q_P; signed (2^(b-1), 2^(b-1) - 1), e.g.
    (8, 7) at 4 bits, unsigned (0, 2^b - 1). Call it at every forward with ``self.bits``, which a
    bit allocator may change between steps; never cache the range."""
    if signed:
        return 2 ** (bits - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def features_per_sample(x: Tensor) -> int:
    """Elements of one sample of a batch-first tensor (LSQ's N for an activation's step scale)."""
    return x[0].numel() if x.dim() > 1 else x.numel()
