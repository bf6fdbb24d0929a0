"""Issue 19: the table-driven nearest-level search gives exactly ``bucketize``'s answer (the code
before the issue) on values at, beside and between midpoints and levels, in and out of range."""
from __future__ import annotations

import pytest
import torch

from qbench.contract.quant import levels as L


def _reference_index(u: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    return torch.bucketize(u.detach().contiguous(), ((levels[1:] + levels[:-1]) / 2).contiguous())


def _hard_values(levels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    mids = (levels[1:] + levels[:-1]) / 2
    edge = torch.cat([mids, levels])
    special = torch.cat([edge, torch.nextafter(edge, edge + 1), torch.nextafter(edge, edge - 1),
                         torch.tensor([float("inf"), -float("inf"), 1e30, -1e30, 0.0, -0.0], dtype=levels.dtype)])
    u = torch.cat([special.repeat(40), 2 * torch.randn(20000, generator=gen, dtype=levels.dtype)])
    return u[torch.randperm(u.numel(), generator=gen)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [2, 3, 4, 8, 15, 16, 31, 256])
@pytest.mark.parametrize("kind", ["uniform", "cubic", "random"])
def test_fast_path_equals_bucketize(dtype: torch.dtype, k: int, kind: str) -> None:
    gen = torch.Generator().manual_seed(k)
    if kind == "uniform":
        levels = torch.linspace(-1, 1, k, dtype=dtype)
    elif kind == "cubic":
        levels = torch.linspace(-1, 1, k, dtype=dtype) ** 3
    else:
        levels = torch.sort(torch.randn(k, generator=gen, dtype=dtype) ** 3)[0]
    u = _hard_values(levels, gen)
    assert u.numel() >= L.FAST_MIN_NUMEL
    ref = _reference_index(u, levels)
    assert torch.equal(L.nearest_level_index(u, levels), ref)
    assert torch.equal(L.project_nearest(u, levels), levels[ref])
    x = u.clone().requires_grad_()
    out = L.project_ste(x, levels)
    torch.testing.assert_close(out.detach(), x.detach() + (levels[ref] - x.detach()), rtol=0, atol=0,
                               equal_nan=True)  # inf inputs give inf - inf
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_unsuitable_level_sets_fall_back() -> None:
    u = torch.randn(20000)
    for levels in (torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 1e-30, 1.0]), torch.tensor([1.0])):
        assert torch.equal(L.nearest_level_index(u, levels), _reference_index(u, levels))
