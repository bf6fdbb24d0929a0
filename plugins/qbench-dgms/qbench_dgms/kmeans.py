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

import torch
from torch import Tensor


def kmeans_pp_seeds(x: Tensor, k: int) -> Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii, 2007) of 1-D data, from torch's global RNG.

    Each new seed is drawn with probability proportional to its squared distance to the nearest
    seed so far (inverse-CDF sampling with ``torch.rand``, which works for any N, unlike
    ``torch.multinomial`` which is limited to 2**24 categories). When every point already
    coincides with a seed (fewer distinct values than ``k``) a uniformly drawn point is used.

    :param x: 1-D data (float64 recommended).
    :param k: number of seeds.
    :returns: the ``k`` seeds, in draw order.
    """
    x = x.flatten()
    n = x.numel()
    if n == 0:
        raise ValueError("kmeans_pp_seeds: empty input")
    seeds = torch.empty(k, dtype=x.dtype)
    first = int(torch.randint(n, (1,)))
    seeds[0] = x[first]
    d2 = (x - seeds[0]) ** 2
    for j in range(1, k):
        cdf = torch.cumsum(d2, 0)
        total = cdf[-1]
        u = torch.rand(1, dtype=x.dtype)
        if float(total) > 0:
            idx = int(torch.searchsorted(cdf, u * total).clamp_max(n - 1))
        else:
            idx = int(u * n) % n
        seeds[j] = x[idx]
        d2 = torch.minimum(d2, (x - seeds[j]) ** 2)
    return seeds


def assign_1d(x: Tensor, centres: Tensor) -> Tensor:
    """Index of the nearest centre for each point; ``centres`` must be sorted ascending."""
    bounds = (centres[1:] + centres[:-1]) / 2
    return torch.bucketize(x, bounds)


def kmeans_1d(x: Tensor, k: int, iters: int = 100, tol: float = 1e-7) -> tuple[Tensor, Tensor]:
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
