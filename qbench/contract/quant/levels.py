"""Nearest-level projection onto a sorted, non-uniform level set (a LUT).

APoT, POST, ADQ's codebook and DGMS's 1-D k-means all map values to the nearest of a few sorted
levels. Comparing against the midpoints with a binary search keeps memory at O(numel), where the
obvious ``(x[..., None] - levels).abs().argmin(-1)`` builds a numel x levels matrix (a ResNet-18
layer at 8 bits would be 2.4M x 256).
"""
from __future__ import annotations

import torch
from torch import Tensor


def nearest_level_index(u: Tensor, levels: Tensor) -> Tensor:
    """Index into ``levels`` (sorted ascending) of the level nearest each element of ``u``.

    A value exactly halfway between two levels goes to the lower one. No gradient.
    """
    mids = (levels[1:] + levels[:-1]) / 2
    return torch.bucketize(u.detach().contiguous(), mids.contiguous())


def project_nearest(u: Tensor, levels: Tensor) -> Tensor:
    """Each element of ``u`` replaced by its nearest level (``levels`` sorted ascending)."""
    return levels[nearest_level_index(u, levels)]


def project_ste(u: Tensor, levels: Tensor) -> Tensor:
    """Nearest level in the forward pass, identity gradient in the backward pass (the STE)."""
    return u + (project_nearest(u, levels) - u).detach()
