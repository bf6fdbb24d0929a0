# Frozen copy of qbench_dgms/kmeans.py before its faster sort (qbench commit edaa569):
# the reference tests/test_frozen_reference.py pins the faster init against, bit for bit.
"""A small 1-D k-means (k-means++ seeding + Lloyd) on torch, for DGMS's mixture initialisation.

Why our own: DGMS initialises each layer's mixture by k-means on the FP weights, and qbench needs
that to be reproducible from the job seed alone. The harness seeds torch's global RNG with the job
seed before the quantizers are initialised, so drawing the k-means++ seeds from that RNG (and
nothing else) makes the init a pure function of (weights, K, seed). Lloyd iterations themselves are
deterministic. In one dimension the nearest centre is found by ``bucketize`` against the midpoints
of the sorted centres, and Lloyd runs on sorted data with prefix sums, so no N x K distance matrix
is ever formed.
"""
from __future__ import annotations

import bisect

import torch
from torch import Tensor

from qbench.api import nearest_level_index


def kmeans_pp_seeds(x: Tensor, k: int, block: int = 4096) -> Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii, 2007) of 1-D data, from torch's global RNG.

    Each new seed is drawn with probability proportional to its squared distance D^2 to the
    nearest seed so far. 1-D makes this cheap: on sorted data a new seed can only become the
    nearest seed of the points between its two neighbouring seeds, so only that run of D^2 is
    updated, and sampling goes through per-block sums of D^2 (two small inverse-CDF draws with
    ``torch.rand``) instead of a cumulative sum over all N points per seed. When every point
    already coincides with a seed (fewer distinct values than ``k``) a uniform point is drawn.

    :param x: 1-D data (float64 recommended).
    :param k: number of seeds.
    :param block: block length of the D^2 partial sums (speed only).
    :returns: the ``k`` seeds, in draw order.
    """
    xs, _ = torch.sort(x.flatten())
    n = xs.numel()
    if n == 0:
        raise ValueError("kmeans_pp_seeds: empty input")
    nb = -(-n // block)
    d2 = xs.new_zeros(nb * block)  # padding stays 0, so it is never drawn
    sums = xs.new_zeros(nb)
    seeds = torch.empty(k, dtype=xs.dtype)
    placed: list[float] = []  # sorted seed values, to find a new seed's neighbours

    def draw() -> int:
        total = float(sums.sum())
        u = float(torch.rand(1, dtype=xs.dtype))
        if total <= 0:
            return min(int(u * n), n - 1)
        cb = torch.cumsum(sums, 0)
        target = u * float(cb[-1])
        b = min(int(torch.searchsorted(cb, torch.tensor([target], dtype=xs.dtype))), nb - 1)
        while b > 0 and float(sums[b]) <= 0:  # rounding at a block edge: step back to mass
            b -= 1
        rest = target - (float(cb[b - 1]) if b > 0 else 0.0)
        inner = torch.cumsum(d2[b * block:(b + 1) * block], 0)
        j = min(int(torch.searchsorted(inner, torch.tensor([rest], dtype=xs.dtype))), block - 1)
        while j > 0 and float(d2[b * block + j]) <= 0:
            j -= 1
        return min(b * block + j, n - 1)

    for j in range(k):
        s = float(xs[draw()])
        seeds[j] = s
        pos = bisect.bisect_left(placed, s)
        lo = 0 if pos == 0 else int(torch.searchsorted(xs, torch.tensor([placed[pos - 1]], dtype=xs.dtype)))
        hi = n if pos == len(placed) else int(torch.searchsorted(
            xs, torch.tensor([placed[pos]], dtype=xs.dtype), right=True))
        placed.insert(pos, s)
        seg = (xs[lo:hi] - s) ** 2
        d2[lo:hi] = seg if j == 0 else torch.minimum(d2[lo:hi], seg)
        b0, b1 = lo // block, (max(hi, lo + 1) - 1) // block + 1
        sums[b0:b1] = d2[b0 * block:b1 * block].view(-1, block).sum(1)
    return seeds


def assign_1d(x: Tensor, centres: Tensor) -> Tensor:
    """Index of the nearest centre for each point; ``centres`` must be sorted ascending."""
    return nearest_level_index(x, centres)


def kmeans_1d(x: Tensor, k: int, iters: int = 300, tol: float = 1e-7) -> tuple[Tensor, Tensor]:
    """k-means of 1-D data: k-means++ seeds, then Lloyd until the centres stop moving.

    Lloyd runs on the sorted data with prefix sums: in 1-D each cluster is the run of sorted points
    between two midpoints, so one iteration is K binary searches, O(K log N), instead of a pass
    over all N points (the result is the same as the textbook update).

    :param x: data, any shape (flattened; computed in float64).
    :param k: number of clusters.
    :param iters: maximum Lloyd iterations.
    :param tol: stop when no centre moves more than ``tol * std(x)`` (absolute ``tol`` if std is 0).
    :returns: ``(centres, labels)``: sorted centres (k,) and each point's cluster index. An empty
        cluster keeps its previous centre (it can happen when x has fewer than k distinct values).
    """
    x = x.detach().flatten().to(torch.float64)
    centres, _ = torch.sort(kmeans_pp_seeds(x, k))
    xs, _ = torch.sort(x)
    prefix = torch.cat([xs.new_zeros(1), torch.cumsum(xs, 0)])
    n = xs.numel()
    scale = float(x.std()) if n > 1 else 0.0
    thresh = tol * (scale if scale > 0 else 1.0)
    for _ in range(iters):
        bounds = (centres[1:] + centres[:-1]) / 2
        # points <= bound go to the lower cluster, as in assign_1d (bucketize, right=False)
        cut = torch.searchsorted(xs, bounds, right=True)
        edges = torch.cat([cut.new_zeros(1), cut, cut.new_full((1,), n)])
        counts = (edges[1:] - edges[:-1]).to(x.dtype)
        sums = prefix[edges[1:]] - prefix[edges[:-1]]
        new = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
        new, _ = torch.sort(new)
        moved = float((new - centres).abs().max())
        centres = new
        if moved <= thresh:
            break
    return centres, assign_1d(x, centres)
