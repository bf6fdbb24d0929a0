"""Faster N2UQ, same numbers: the map's forward and its GSTE gradients (input, t0 and widths)
equal the frozen older code's bit for bit (frozen_function.py), with inputs exactly on and beside
every threshold and segment boundary, outside the range, at 2 and 4 bits, small and large."""
from __future__ import annotations

import pytest
import torch
from qbench_n2uq.function import n2uq_levels, segment_boundaries, thresholds_from_boundaries

from qbench.testing import sibling_module

frozen = sibling_module(__file__, "frozen_function")


@pytest.mark.parametrize("bits", [2, 4])
@pytest.mark.parametrize("shape", [(128, 16, 8, 8), (64, 17, 64), (300,)])
def test_n2uq_forward_and_gradients_identical(bits: int, shape: tuple[int, ...]) -> None:
    n = 2**bits - 1
    g = torch.Generator().manual_seed(bits)
    t0 = torch.tensor(0.05)
    widths = 0.1 + torch.rand(n, generator=g)
    b = segment_boundaries(t0, widths).detach()
    edges = torch.cat([b, thresholds_from_boundaries(b)])
    edges = torch.cat([edges, torch.nextafter(edges, edges + 1), torch.nextafter(edges, edges - 1)])
    x0 = (torch.randn(shape, generator=g) * float(b[-1])).reshape(-1)
    k = min(x0.numel() // 4, edges.numel() * 50)
    x0[torch.randperm(x0.numel(), generator=g)[:k]] = edges.repeat(50)[:k]
    x0 = x0.reshape(shape)
    go = torch.randn(shape, generator=g)
    results = []
    for fn in (frozen.n2uq_levels, n2uq_levels):
        x, t, w = x0.clone().requires_grad_(), t0.clone().requires_grad_(), widths.clone().requires_grad_()
        out = fn(x, t, w)
        out.backward(go)
        results.append((out.detach(), x.grad, t.grad, w.grad))
    for a, c in zip(*results):
        assert torch.equal(a, c)
