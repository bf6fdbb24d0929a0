"""Faster DGMS init, same numbers: the k-means init gives the frozen older code's centres, labels
and global-RNG draws bit for bit (frozen_kmeans.py), with ties, a block of zeros, fewer distinct
values than clusters, and a ResNet-18-sized layer."""
from __future__ import annotations

import pytest
import torch
from qbench_dgms import kmeans

from qbench.testing import sibling_module

frozen_kmeans = sibling_module(__file__, "frozen_kmeans")


def _weights(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, generator=g) * 0.05
    w[: n // 50] = 0.0  # ties and a pruned-looking block
    w[n // 50: n // 25] = -0.0
    return w


@pytest.mark.parametrize("n,k,seed", [(1000, 4, 0), (40000, 16, 1), (5, 8, 2), (300000, 16, 3), (2_359_296, 16, 4)])
def test_kmeans_is_unchanged(n: int, k: int, seed: int) -> None:
    x = _weights(n, seed).double()
    torch.manual_seed(seed)
    c0, l0 = frozen_kmeans.kmeans_1d(x, k)
    after0 = torch.rand(1)
    torch.manual_seed(seed)
    c1, l1 = kmeans.kmeans_1d(x, k)
    assert torch.equal(c0, c1) and torch.equal(l0, l1)
    assert torch.equal(torch.signbit(c0), torch.signbit(c1))
    assert torch.equal(after0, torch.rand(1))  # the same draws from the global RNG
