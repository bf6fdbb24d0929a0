"""Straight-through-estimator helpers: the shared plumbing of every uniform quantizer."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def round_ste(x: Tensor) -> Tensor:
    """round(x) in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def floor_ste(x: Tensor) -> Tensor:
    """floor(x) forward, identity gradient backward."""
    return x + (torch.floor(x) - x).detach()


def grad_scale(x: Tensor, scale: float) -> Tensor:
    """Value of ``x`` forward, gradient multiplied by ``scale`` backward (LSQ's step-size trick)."""
    return (x - x * scale).detach() + x * scale


def lsq_grad_scale(numel: int, q_p: int) -> float:
    """LSQ's step-size gradient scale g = 1 / sqrt(N * Q_P) (Esser et al., 2020)."""
    return 1.0 / math.sqrt(max(numel * max(q_p, 1), 1))


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """(Q_N, Q_P) so that integers lie in [-Q_N, Q_P]: 2^b levels, symmetric-ish when signed."""
    if signed:
        return 2 ** (bits - 1), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def features_per_sample(x: Tensor) -> int:
    """Elements of one sample of a batch-first tensor (LSQ's N for an activation's step scale)."""
    return x[0].numel() if x.dim() > 1 else x.numel()
