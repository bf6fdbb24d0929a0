"""Clipping-value calibration shared by quantizers that pick their range from a batch.

PACT, APoT, N2UQ and LSQ+ (``init="mse"``) each start from the clipping value (or step) that
minimises the quantization error on the first calibration batch. The papers agree on the idea
and are silent on the details; keeping one implementation here means one subsampling rule and
one tie-break, so those quantizers' inits differ only where their papers do.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor

#: At most this many values of a calibration batch enter an MSE search: enough for a stable
#: error estimate, small enough that a 100-candidate search stays cheap on a CPU.
CALIBRATION_VALUES = 65536


def calibration_sample(x: Tensor, limit: int = CALIBRATION_VALUES, seed: int = 0) -> Tensor:
    """``x`` flattened to float32; above ``limit`` values, ``limit`` of them drawn at random (the
    same draw on every run): what to pass to :func:`mse_search` from a calibration batch.

    Random, not strided: a stride k over a (batch, tokens, channels) or (batch, C, H, W) tensor
    keeps the same channels or columns in every sample whenever k divides their count (stride 2
    on a ViT's 64-wide activations keeps only the even channels), which biases the search. The
    draw is with replacement (O(limit) memory, whatever the batch size) from a private generator
    seeded with ``seed``, so it is the same on every run and takes nothing from the job's random
    stream (data order, dropout masks).
    """
    if limit < 1:
        raise ValueError(f"calibration_sample: limit must be >= 1, got {limit}")
    flat = x.detach().reshape(-1).float()
    if flat.numel() > limit:
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randint(flat.numel(), (limit,), generator=gen)
        flat = flat[idx.to(flat.device)]
    return flat


def mse_search(x: Tensor, quantize: Callable[[Tensor, Tensor], Tensor],
               candidates: Tensor | Sequence[float]) -> float:
    """The candidate c minimising mean((quantize(x, c) - x)^2); the first one on ties.

    :param x: the values to reconstruct (e.g. from :func:`calibration_sample`).
    :param quantize: ``quantize(x, c)`` with ``c`` a 0-d tensor on ``x``'s device and dtype.
    :param candidates: the clipping values (or steps) to try, in the order ties are broken.
    """
    values = torch.as_tensor(candidates, dtype=x.dtype, device=x.device).reshape(-1)
    if values.numel() == 0:
        raise ValueError("mse_search: no candidates")
    best, best_err = 0, math.inf
    for i in range(values.numel()):
        err = float((quantize(x, values[i]) - x).pow(2).mean())
        if err < best_err:
            best, best_err = i, err
    return float(values[best])


def clip_grid(top: float, points: int = 100, low: float | None = None) -> Tensor:
    """``points`` evenly spaced clipping candidates from ``low`` (default ``top / points``) to ``top``:
    the candidates for :func:`mse_search`, with ``top`` the largest magnitude of the sample, e.g.
    ``mse_search(x, quantize, clip_grid(float(x.abs().max())))``."""
    if points < 1:
        raise ValueError(f"clip_grid: points must be >= 1, got {points}")
    return torch.linspace(top / points if low is None else low, top, points)
