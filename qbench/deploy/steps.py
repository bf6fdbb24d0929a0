"""Activation quantizers as static step functions: levels and float32-exact thresholds.

A quantizer that is an elementwise function of its input with fixed parameters (N2UQ's learned
thresholds, APoT's or a square-law level set, LSQ+'s offset grid) is a step function. Its levels
come from a ramp through it, its thresholds from bisection over float32 bit patterns between the
ramp points where the output steps, so ``levels[#thresholds <= x]`` reproduces it for every float.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def _nextafter_mid(lo: Tensor, hi: Tensor) -> Tensor:
    """The float32 midpoint of each (lo, hi) pair by their bit patterns (bisection over floats)."""
    def key(t: Tensor) -> Tensor:  # float32 -> int64 key, monotonic in the float's value
        i = t.view(torch.int32).long()
        return torch.where(i < 0, -(i & 0x7FFFFFFF), i)

    def unkey(k: Tensor) -> Tensor:
        i = torch.where(k < 0, (-k) | -0x80000000, k).to(torch.int32)
        return i.view(torch.float32)
    return unkey((key(lo) + key(hi)) // 2)


def step_function(aq: nn.Module, xs: Tensor, ramp: Tensor, y_r: Tensor, y_x: Tensor) -> tuple[Tensor, Tensor] | str:
    """An elementwise static step function (non-uniform or learned thresholds, offsets): its levels
    and float32-exact thresholds, found by bisection between ramp points where the output steps."""
    r, y = ramp.reshape(-1), y_r.reshape(-1)
    jumps = torch.nonzero(y[1:] != y[:-1]).reshape(-1)
    if jumps.numel() == 0 or jumps.numel() > 255:
        return f"{jumps.numel()} output steps"
    lo, hi = r[jumps].clone(), r[jumps + 1].clone()
    shape = _probe_shape(xs.shape, jumps.numel())

    def probe(t: Tensor) -> Tensor:
        buf = torch.zeros(shape)
        buf.view(-1)[: t.numel()] = t
        return aq(buf).reshape(-1)[: t.numel()]
    with torch.no_grad():
        for _ in range(64):
            mid = _nextafter_mid(lo, hi)
            moved = (mid != lo) & (mid != hi)
            if not bool(moved.any()):
                break
            above = probe(mid) != y[jumps]
            hi = torch.where(moved & above, mid, hi)
            lo = torch.where(moved & ~above, mid, lo)
    levels = torch.cat([y[jumps[:1]], y[jumps + 1]])
    for x, out in ((xs, y_x), (ramp, y_r)):
        bad = (steps(x, hi, levels) - out).abs() > 1e-6 * float(levels.abs().max().clamp_min(1.0))
        if int(bad.sum()) > max(2, int(1e-5 * x.numel())):
            return f"not an elementwise static function ({int(bad.sum())} of {x.numel()} values differ)"
    return hi, levels


def _probe_shape(shape: torch.Size, n: int) -> torch.Size:
    """The fewest leading samples of ``shape`` that hold ``n`` values. The bisection's values sit at
    the same flat positions as in a full probe batch, so an elementwise quantizer (any per-position
    or per-channel parameter included) sees them exactly as there; probing a whole batch for at most
    255 values cost most of a job's export."""
    if len(shape) < 2:
        return shape
    per = max(1, shape[1:].numel())
    return torch.Size((min(shape[0], -(-n // per)), *shape[1:]))


def steps(x: Tensor, thresholds: Tensor, levels: Tensor) -> Tensor:
    """What the step-function ONNX ops compute: levels[#thresholds <= x].

    The thresholds are ascending (bisection results in ramp order), so the count is a binary
    search: the same integers as comparing every value with every threshold, without the
    numel x thresholds matrix (seconds per job on a ViT's probe batch)."""
    if thresholds.numel() > 1 and not bool((thresholds[1:] >= thresholds[:-1]).all()):
        return levels[(x.unsqueeze(-1) >= thresholds).sum(-1)]
    return levels[torch.searchsorted(thresholds.contiguous(), x.contiguous(), right=True)]
