"""Nearest-level projection onto a sorted, non-uniform level set (a LUT).

APoT, POST, ADQ's codebook and DGMS's 1-D k-means all map values to the nearest of a few sorted
levels. Comparing against the midpoints keeps memory at O(numel), where the obvious
``(x[..., None] - levels).abs().argmin(-1)`` builds a numel x levels matrix (a ResNet-18 layer at
8 bits would be 2.4M x 256).

Speed: on the CPU ``torch.bucketize`` costs ~70 ns per element (a scalar binary
search) and ``levels[idx]`` another ~15 ns (advanced indexing), most of an APoT or POST step.
Large CPU tensors therefore go through a uniform grid of cells instead (:class:`_Grid`, which
:func:`count_at_or_below` shares): a cell number from two float ops, then table look-ups with
``index_select`` and one comparison, all vectorised. The answer is exactly ``bucketize``'s
(the cell map is monotone, so a value's cell bounds which midpoints lie below it; see
:class:`_Grid`); tests compare the two on values at, just beside, and between the midpoints.
A NaN goes to index 0 (``bucketize``: the last; before the shared grid it raised).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import torch
from torch import Tensor

#: Below this many elements, or off the CPU, ``bucketize`` is used (building the tables costs ~0.1 ms).
FAST_MIN_NUMEL = 8192
#: Grid sizes tried, until every midpoint falls in a cell of its own.
CELL_COUNTS = (1024, 16384)


#: How many level sets' tables are kept (a few hundred KB at most each).
TABLE_CACHE = 32
_tables: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
#: A point set seen for the first time gets its tables only for a tensor this large: a learned set
#: (ADQ's codebook, N2UQ's thresholds) changes at every step, and building the tables in Python
#: costs more than ``bucketize`` on a smaller tensor (the micro ViT's weights).
BUILD_MIN_NUMEL = 1 << 17


def _memo(kind: str, points: Tensor, build: Callable[[], Any], worth: Callable[[], bool] = lambda: True) -> Any:
    """``build()`` for this point set, remembered by the points' bytes and dtype; None, without
    building, when the set is new and ``worth()`` says the tables would not repay their cost.

    Why: a fixed level set (APoT's, POST's) is the same at every call, and on small tensors (the
    micro ViT's activations) building its tables in Python cost more than the look-up itself. The
    key is the exact bytes, so a hit returns the tables the same points would build. Learned sets
    (ADQ's codebook) change every step and simply miss.
    """
    key = (kind, str(points.dtype), points.detach().cpu().numpy().tobytes())
    if key in _tables:
        _tables.move_to_end(key)
        return _tables[key]
    if not worth():
        return None
    value = _tables[key] = build()
    if len(_tables) > TABLE_CACHE:
        _tables.popitem(last=False)
    return value


def _midpoints(levels: Tensor) -> Tensor:
    return (levels[1:] + levels[:-1]) / 2


class _Grid:
    """Sorted, distinct boundaries on a grid of cells over [lo, hi]: for a value in cell c, the
    boundaries in lower cells are below it and those in higher cells above it (the cell map is
    monotone and computed the same way for values and boundaries), so with at most one boundary
    per cell, #(boundaries < v) = below[c] + [v > point[c]] (``<=``: ``>=``). Values are clamped
    onto [lo, hi] first; the caller picks lo and hi so that clamping changes no answer."""

    def __init__(self, lo: float, hi: float, scale: float, below: Tensor, point: Tensor) -> None:
        # lo, hi and scale are values of the points' dtype (held as Python floats: the scalar
        # arithmetic path is the faster one, and it is the same for points and values)
        self.lo, self.hi, self.scale, self.below, self.point = lo, hi, scale, below, point

    @staticmethod
    def build(points: Tensor, lo: float, hi: float) -> "_Grid | None":
        """The tables, or None when no grid size gives every boundary a cell of its own."""
        lo_t, hi_t = torch.tensor(lo, dtype=points.dtype), torch.tensor(hi, dtype=points.dtype)
        if not (bool(lo_t <= points[0]) and bool(points[-1] <= hi_t) and bool(torch.isfinite(hi_t - lo_t))
                and bool(hi_t > lo_t)):
            return None
        for m in CELL_COUNTS:
            scale = float(torch.tensor(m / float(hi_t - lo_t), dtype=points.dtype))
            grid = _Grid(float(lo_t), float(hi_t), scale, points, points)
            cp = grid.cell(points)
            if points.numel() > 1 and not bool((cp[1:] > cp[:-1]).all()):
                continue
            size = int(grid.cell(hi_t.reshape(1).to(points.dtype))) + 1
            point = torch.full((size,), float("inf"), dtype=points.dtype, device=points.device)
            point[cp] = points
            below = torch.searchsorted(cp, torch.arange(size, device=points.device))  # boundaries in lower cells
            return _Grid(float(lo_t), float(hi_t), scale, below, point)
        return None

    def cell(self, v: Tensor) -> Tensor:
        """Cell number (int64, what ``index_select`` takes) of each value in [lo, hi]; monotone.
        :meth:`lookup` computes the same in place."""
        return (v - self.lo).mul_(self.scale).long()

    def lookup(self, u: Tensor, at_or_below: bool) -> tuple[Tensor, Tensor]:
        """(cell numbers, whether u passes its cell's boundary), both flat."""
        v = torch.clamp(u.reshape(-1), self.lo, self.hi)
        c = (v - self.lo).mul_(self.scale).nan_to_num_(0.0).long()  # cell(v); a NaN goes to cell 0
        mid = torch.index_select(self.point, 0, c)
        return c, (torch.ge(v, mid) if at_or_below else torch.gt(v, mid))

    def count(self, u: Tensor, at_or_below: bool) -> Tensor:
        c, passed = self.lookup(u, at_or_below)
        return torch.index_select(self.below, 0, c) + passed


class _Cells:
    """Nearest-level look-up of one level set: a :class:`_Grid` of its midpoints over
    [levels[0], levels[-1]] (clamping there moves no value to another nearest level), plus the
    level below and above each cell's midpoint."""

    def __init__(self, grid: _Grid, lev_lo: Tensor, lev_hi: Tensor) -> None:
        self.grid, self.lev_lo, self.lev_hi = grid, lev_lo, lev_hi

    @staticmethod
    def build(levels: Tensor, mids: Tensor) -> "_Cells | None":
        if levels.numel() < 2 or not bool((levels[1:] > levels[:-1]).all()):
            return None
        lo, hi = float(levels[0]), float(levels[-1])
        if not (lo <= float(mids[0]) and float(mids[-1]) < hi) or not hi - lo < float("inf"):
            return None
        grid = _Grid.build(mids, lo, hi)
        if grid is None:
            return None
        has = torch.isfinite(grid.point)
        return _Cells(grid, levels[grid.below], levels[torch.where(has, grid.below + 1, grid.below)])

    def index(self, u: Tensor) -> Tensor:
        return self.grid.count(u, at_or_below=False).view(u.shape)

    def project(self, u: Tensor) -> Tensor:
        c, above = self.grid.lookup(u, at_or_below=False)
        return torch.where(above, torch.index_select(self.lev_hi, 0, c),
                           torch.index_select(self.lev_lo, 0, c)).view(u.shape)


def _cells(u: Tensor, levels: Tensor) -> _Cells | None:
    if (u.device.type != "cpu" or u.numel() < FAST_MIN_NUMEL or u.dtype != levels.dtype
            or not u.dtype.is_floating_point or levels.dim() != 1 or levels.device.type != "cpu"):
        return None
    return _memo("cells", levels, lambda: _Cells.build(levels.detach().clone(), _midpoints(levels.detach())),
                 lambda: _worth_building(u))


def _worth_building(u: Tensor) -> bool:
    """Build a new point set's tables for ``u``? For a large tensor, or one holding a NaN, whose
    answer the tables decide (0; ``bucketize`` / ``searchsorted`` give the last index): without
    NaN their answers are the same, so skipping the tables changes no value."""
    return u.numel() >= BUILD_MIN_NUMEL or bool(u.isnan().any())


def nearest_level_index(u: Tensor, levels: Tensor) -> Tensor:
    """Index into ``levels`` (sorted ascending) of the level nearest each element of ``u``.

    A value exactly halfway between two levels goes to the lower one. No gradient. (NaN: the
    fast path gives 0 where ``bucketize`` gives the last index.)
    """
    u = u.detach().contiguous()
    cells = _cells(u, levels)
    if cells is not None:
        return cells.index(u)
    return torch.bucketize(u, _midpoints(levels).contiguous())


def project_nearest(u: Tensor, levels: Tensor) -> Tensor:
    """Each element of ``u`` replaced by its nearest level (``levels`` sorted ascending)."""
    u = u.detach().contiguous()
    cells = _cells(u, levels)
    if cells is not None:
        return cells.project(u)
    idx = torch.bucketize(u, _midpoints(levels).contiguous()).reshape(-1)
    return torch.index_select(levels, 0, idx).view(u.shape)


def project_ste(u: Tensor, levels: Tensor) -> Tensor:
    """Nearest level in the forward pass, identity gradient in the backward pass (the STE).

    The value is computed as ``u + (level - u)``, the same floating-point operations as before
    the look-up tables (which is not always exactly ``level``), so results do not move.
    """
    d = project_nearest(u, levels)
    return u + d.sub_(u.detach())


def count_at_or_below(u: Tensor, points: Tensor) -> Tensor:
    """For each element of ``u``, how many of the sorted ``points`` are <= it: exactly
    ``torch.searchsorted(points, u, right=True)`` (flattened), which N2UQ's forward and the deploy
    step check use to place a value among learned thresholds.

    Speed: large CPU tensors go through a grid of cells, as :func:`nearest_level_index`
    does. The grid spans [points[0] - d, points[-1] + d] (d = their spread), so clamping a value
    onto it never moves it across a point; with one point per cell,
    #(points <= u) = #(points in cells below u's) + [u >= the point in u's cell]. A NaN counts 0
    here (``searchsorted`` counts every point); other values, infinities included, agree.
    """
    flat = u.detach().reshape(-1).contiguous()
    pts = points.detach().contiguous()
    if (flat.device.type != "cpu" or flat.numel() < FAST_MIN_NUMEL or flat.dtype != pts.dtype
            or not flat.dtype.is_floating_point or pts.dim() != 1 or pts.numel() < 1):
        return torch.searchsorted(pts, flat, right=True)
    grid = _memo("count", pts, lambda: _count_grid(pts.clone()), lambda: _worth_building(flat))
    if grid is None:
        return torch.searchsorted(pts, flat, right=True)
    return grid.count(flat, at_or_below=True)


def _count_grid(pts: Tensor) -> _Grid | None:
    """The grid for :func:`count_at_or_below`, or None when ``searchsorted`` must answer."""
    if not bool(torch.isfinite(pts).all()) or not bool((pts[1:] > pts[:-1]).all()):
        return None
    spread = float(pts[-1] - pts[0]) or max(abs(float(pts[0])), 1.0)
    grid = _Grid.build(pts, float(pts[0]) - spread, float(pts[-1]) + spread)
    if grid is None or not (grid.lo < float(pts[0]) and grid.hi > float(pts[-1])):
        return None
    return grid
