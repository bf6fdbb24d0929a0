"""Nearest-level projection onto a sorted, non-uniform level set (a LUT).

APoT, POST, ADQ's codebook and DGMS's 1-D k-means all map values to the nearest of a few sorted
levels. Comparing against the midpoints keeps memory at O(numel), where the obvious
``(x[..., None] - levels).abs().argmin(-1)`` builds a numel x levels matrix (a ResNet-18 layer at
8 bits would be 2.4M x 256).

Speed (issue 19): on the CPU ``torch.bucketize`` costs ~70 ns per element (a scalar binary
search) and ``levels[idx]`` another ~15 ns (advanced indexing), most of an APoT or POST step.
Large CPU tensors therefore go through a uniform grid of cells instead (:class:`_Cells`): a cell
number from two float ops, then three table look-ups with ``index_select`` and one comparison,
all vectorised. The answer is exactly ``bucketize``'s (the cell map is monotone, so a value's cell
bounds which midpoints lie below it; see :meth:`_Cells.build`); tests compare the two on values
at, just beside, and between the midpoints.
"""
from __future__ import annotations

import torch
from torch import Tensor

#: Below this many elements, or off the CPU, ``bucketize`` is used (building the tables costs ~0.1 ms).
FAST_MIN_NUMEL = 8192
#: Grid sizes tried, until every midpoint falls in a cell of its own.
CELL_COUNTS = (1024, 16384)


def _midpoints(levels: Tensor) -> Tensor:
    return (levels[1:] + levels[:-1]) / 2


class _Cells:
    """Look-up tables of one level set on a grid of M cells over [levels[0], levels[-1]]."""

    def __init__(self, lo: float, scale: float, hi: float, mid: Tensor, lo_idx: Tensor, lev_lo: Tensor,
                 lev_hi: Tensor) -> None:
        self.lo, self.scale, self.hi = lo, scale, hi
        self.mid, self.lo_idx, self.lev_lo, self.lev_hi = mid, lo_idx, lev_lo, lev_hi

    def clamp(self, u: Tensor) -> Tensor:
        """Values outside [levels[0], levels[-1]] moved onto it (their nearest level is unchanged)."""
        return torch.clamp(u, self.lo, self.hi)

    def cell(self, v: Tensor) -> Tensor:
        """Cell number (int64, what ``index_select`` takes) of each clamped value; monotone in it."""
        return (v - self.lo).mul_(self.scale).long()

    @staticmethod
    def build(levels: Tensor, mids: Tensor) -> "_Cells | None":
        """The tables, or None when this level set does not suit them (then use ``bucketize``).

        For u in cell c: every midpoint in a lower cell is < u and every one in a higher cell is
        >= u (``cell`` is monotone and computed the same way for both), so with at most one
        midpoint per cell, #(midpoints < u) = #(midpoints in cells < c) + [u > that cell's midpoint].
        """
        if levels.numel() < 2 or not bool((levels[1:] > levels[:-1]).all()):
            return None
        lo, hi = float(levels[0]), float(levels[-1])
        if not (lo <= float(mids[0]) and float(mids[-1]) < hi) or not hi - lo < float("inf"):
            return None
        for m in CELL_COUNTS:
            cells = _Cells(lo, m / (hi - lo), hi, mids, mids, levels, levels)
            cm = cells.cell(cells.clamp(mids))
            if not bool((cm[1:] > cm[:-1]).all()):
                continue
            grid = torch.arange(m + 1, device=levels.device)
            base = torch.searchsorted(cm, grid)  # midpoints in lower cells = index of the level below
            has = torch.zeros(m + 1, dtype=torch.bool, device=levels.device)
            has[cm] = True
            mid = torch.full((m + 1,), float("inf"), dtype=levels.dtype, device=levels.device)
            mid[cm] = mids
            hi_idx = torch.where(has, base + 1, base)
            return _Cells(lo, cells.scale, hi, mid, base, levels[base], levels[hi_idx])
        return None

    def lookup(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """(cell numbers, u > the cell's midpoint), both flat."""
        v = self.clamp(u.reshape(-1))
        c = self.cell(v)
        return c, torch.gt(v, torch.index_select(self.mid, 0, c))

    def index(self, u: Tensor) -> Tensor:
        c, above = self.lookup(u)
        below = torch.index_select(self.lo_idx, 0, c)
        return torch.where(above, below + 1, below).view(u.shape)

    def project(self, u: Tensor) -> Tensor:
        c, above = self.lookup(u)
        return torch.where(above, torch.index_select(self.lev_hi, 0, c),
                           torch.index_select(self.lev_lo, 0, c)).view(u.shape)


def _cells(u: Tensor, levels: Tensor, mids: Tensor) -> _Cells | None:
    if (u.device.type != "cpu" or u.numel() < FAST_MIN_NUMEL or u.dtype != levels.dtype
            or not u.dtype.is_floating_point or levels.dim() != 1):
        return None
    return _Cells.build(levels, mids)


def nearest_level_index(u: Tensor, levels: Tensor) -> Tensor:
    """Index into ``levels`` (sorted ascending) of the level nearest each element of ``u``.

    A value exactly halfway between two levels goes to the lower one. No gradient. (NaN: the
    fast path gives 0 where ``bucketize`` gives the last index.)
    """
    mids = _midpoints(levels)
    u = u.detach().contiguous()
    cells = _cells(u, levels, mids)
    if cells is not None:
        return cells.index(u)
    return torch.bucketize(u, mids.contiguous())


def project_nearest(u: Tensor, levels: Tensor) -> Tensor:
    """Each element of ``u`` replaced by its nearest level (``levels`` sorted ascending)."""
    u = u.detach().contiguous()
    mids = _midpoints(levels)
    cells = _cells(u, levels, mids)
    if cells is not None:
        return cells.project(u)
    return torch.index_select(levels, 0, torch.bucketize(u, mids.contiguous()).reshape(-1)).view(u.shape)


def project_ste(u: Tensor, levels: Tensor) -> Tensor:
    """Nearest level in the forward pass, identity gradient in the backward pass (the STE).

    The value is computed as ``u + (level - u)``, the same floating-point operations as before
    issue 19 (which is not always exactly ``level``), so results do not move.
    """
    d = project_nearest(u, levels)
    return u + d.sub_(u.detach())


def _cell_of(v: Tensor, lo: Tensor, scale: Tensor) -> Tensor:
    """The cell number of each value (int64); the same operations for values and boundaries, so the
    map is monotone between them."""
    return (v - lo).mul_(scale).long()


def count_at_or_below(u: Tensor, points: Tensor) -> Tensor:
    """For each element of ``u``, how many of the sorted ``points`` are <= it: exactly
    ``torch.searchsorted(points, u, right=True)`` (flattened), which N2UQ's forward and the deploy
    step check use to place a value among learned thresholds.

    Speed (issue 19): large CPU tensors go through a grid of cells, as :func:`nearest_level_index`
    does. The grid spans [points[0] - d, points[-1] + d] (d = their spread), so clamping a value
    onto it never moves it across a point; with one point per cell,
    #(points <= u) = #(points in cells below u's) + [u >= the point in u's cell]. A NaN counts 0
    here (``searchsorted`` counts every point); other values, infinities included, agree.
    """
    flat = u.detach().reshape(-1).contiguous()
    pts = points.detach().contiguous()
    if (flat.device.type != "cpu" or flat.numel() < FAST_MIN_NUMEL or flat.dtype != pts.dtype
            or not flat.dtype.is_floating_point or pts.dim() != 1 or pts.numel() < 1
            or not bool(torch.isfinite(pts).all()) or not bool((pts[1:] > pts[:-1]).all())):
        return torch.searchsorted(pts, flat, right=True)
    spread = float(pts[-1] - pts[0]) or max(abs(float(pts[0])), 1.0)
    lo = torch.tensor(float(pts[0]) - spread, dtype=pts.dtype)
    hi = torch.tensor(float(pts[-1]) + spread, dtype=pts.dtype)
    if not (bool(lo < pts[0]) and bool(hi > pts[-1]) and bool(torch.isfinite(hi - lo))):
        return torch.searchsorted(pts, flat, right=True)
    for m in CELL_COUNTS:
        scale = torch.tensor(m / float(hi - lo), dtype=pts.dtype)
        cp = _cell_of(pts, lo, scale)
        if not bool((cp[1:] > cp[:-1]).all()):
            continue
        size = int(_cell_of(hi.reshape(1), lo, scale)) + 1
        below = torch.searchsorted(cp, torch.arange(size))  # points in lower cells
        point = torch.full((size,), float("inf"), dtype=pts.dtype)
        point[cp] = pts
        v = torch.clamp(flat, lo, hi)
        c = _cell_of(v, lo, scale).clamp_(0, size - 1)
        return torch.index_select(below, 0, c) + torch.ge(v, torch.index_select(point, 0, c))
    return torch.searchsorted(pts, flat, right=True)
