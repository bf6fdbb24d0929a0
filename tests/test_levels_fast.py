"""The table-driven nearest-level search gives exactly ``bucketize``'s answer (the code before the
tables) on values at, beside and between midpoints and levels, in and out of range."""
from __future__ import annotations

import pytest
import torch

from qbench.contract.quant import levels as L


@pytest.fixture(autouse=True)
def _tables_for_every_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests compare the table path itself, on tensors of ~20000 values: build for any size."""
    monkeypatch.setattr(L, "BUILD_MIN_NUMEL", 0)


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


def _points_and_values(k: int, kind: str, dtype: torch.dtype, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    if kind == "uniform":
        pts = torch.linspace(-1, 1, k, dtype=dtype)
    elif kind == "n2uq":  # t0, T1, t1, ... with uneven learned widths, as N2UQ's forward builds them
        widths = torch.rand(k, generator=gen, dtype=dtype) + 0.05
        b = 0.1 + torch.cat([torch.zeros(1, dtype=dtype), torch.cumsum(widths, 0)])
        pts = torch.cat([torch.stack([b[:-1], 0.5 * (b[:-1] + b[1:])], 1).reshape(-1), b[-1:]])
    elif kind == "far":  # a tight cluster far from zero
        pts = 1e4 + torch.sort(torch.rand(k, generator=gen, dtype=dtype))[0]
    else:
        pts = torch.unique(torch.randn(k, generator=gen, dtype=dtype) ** 3)
    edge = torch.cat([pts, torch.nextafter(pts, pts + 1), torch.nextafter(pts, pts - 1),
                      torch.tensor([float("inf"), -float("inf"), 1e30, -1e30, 0.0, -0.0], dtype=dtype)])
    u = torch.cat([edge.repeat(30), 2 * torch.randn(20000, generator=gen, dtype=dtype) + float(pts.mean())])
    return pts, u[torch.randperm(u.numel(), generator=gen)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 2, 7, 31, 255])
@pytest.mark.parametrize("kind", ["uniform", "n2uq", "far", "random"])
def test_count_at_or_below_equals_searchsorted_right(dtype: torch.dtype, k: int, kind: str) -> None:
    """N2UQ's forward and the deploy step check count thresholds <= x: the table path gives
    exactly ``searchsorted(..., right=True)`` on values at, just above and just below every point,
    far outside the range and at the infinities."""
    gen = torch.Generator().manual_seed(k)
    pts, u = _points_and_values(k, kind, dtype, gen)
    assert u.numel() >= L.FAST_MIN_NUMEL
    ref = torch.searchsorted(pts, u, right=True)
    got = L.count_at_or_below(u, pts)
    assert got.dtype == ref.dtype and torch.equal(got, ref)
    assert torch.equal(L.count_at_or_below(u.view(-1, 10)[:, :7], pts),
                       torch.searchsorted(pts, u.view(-1, 10)[:, :7].reshape(-1), right=True))


def test_count_at_or_below_takes_the_table_path_when_it_can() -> None:
    """Not a silent fallback: with points one per cell the grid answers (a NaN shows which path ran:
    the grid counts 0, searchsorted every point)."""
    pts = torch.linspace(-1, 1, 31)
    u = torch.cat([torch.randn(10000), torch.tensor([float("nan")])])
    assert int(L.count_at_or_below(u, pts)[-1]) == 0
    assert int(torch.searchsorted(pts, u, right=True)[-1]) == 31
    tied = torch.tensor([0.0, 1e-12, 1.0])  # two points closer than any cell: searchsorted answers
    assert int(L.count_at_or_below(torch.full((10000,), float("nan")), tied)[0]) == 3


def test_a_nan_on_the_table_path_goes_to_index_zero_instead_of_raising() -> None:
    """Before the shared grid, a NaN made a cell number of -2^63 and index_select raised."""
    lv = torch.linspace(-1, 1, 16)
    u = torch.randn(10000)
    u[5] = float("nan")
    assert int(L.nearest_level_index(u, lv)[5]) == 0 and float(L.project_nearest(u, lv)[5]) == -1.0
    assert torch.equal(L.nearest_level_index(u, lv)[6:], torch.bucketize(u[6:], (lv[1:] + lv[:-1]) / 2))


def test_a_new_point_set_gets_tables_only_where_they_repay_or_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A learned set (ADQ's codebook) is new at every step: on a small tensor ``bucketize``
    answers (the same index without NaN), on a large one, or one holding a NaN, the tables."""
    monkeypatch.setattr(L, "BUILD_MIN_NUMEL", 1 << 17)
    L._tables.clear()
    lv = torch.linspace(-1, 1, 16) ** 3
    small = torch.randn(20000)
    assert torch.equal(L.nearest_level_index(small, lv), _reference_index(small, lv))
    assert not L._tables  # nothing built
    with_nan = small.clone()
    with_nan[3] = float("nan")
    assert int(L.nearest_level_index(with_nan, lv)[3]) == 0 and len(L._tables) == 1  # the tables' answer
    L._tables.clear()
    large = torch.randn(1 << 17)
    assert torch.equal(L.nearest_level_index(large, lv), _reference_index(large, lv)) and len(L._tables) == 1
    assert torch.equal(L.nearest_level_index(small, lv), _reference_index(small, lv))  # now a hit
    pts = torch.linspace(-1, 1, 31) ** 3
    L._tables.clear()
    assert torch.equal(L.count_at_or_below(small, pts), torch.searchsorted(pts, small, right=True))
    assert not L._tables
