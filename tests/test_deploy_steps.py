"""Issue 19: the deploy step-function check counts thresholds by binary search; the same levels as
the all-pairs comparison it replaced, on values at and beside every threshold."""
from __future__ import annotations

import pytest
import torch

from qbench.deploy.steps import steps


@pytest.mark.parametrize("k", [1, 2, 5, 16, 255])
def test_steps_equal_all_pairs_count(k: int) -> None:
    g = torch.Generator().manual_seed(k)
    th = torch.sort(torch.randn(k, generator=g))[0]
    levels = torch.randn(k + 1, generator=g)
    x = torch.cat([torch.randn(10000, generator=g), th, torch.nextafter(th, th - 1), torch.nextafter(th, th + 1),
                   torch.tensor([float("inf"), -float("inf")])])
    for t in (x, x[:9000].reshape(30, 300)):
        assert torch.equal(steps(t, th, levels), levels[(t.unsqueeze(-1) >= th).sum(-1)])
