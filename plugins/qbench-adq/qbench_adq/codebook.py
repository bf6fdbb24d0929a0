"""ADQ's per-layer codebook: quantile initialisation, nearest-codeword assignment, EMA update.

Quantile initialisation (the paper: positive and negative weights separately, plus 0; the
probabilities and the level counts are not specified by the paper; qbench uses):

* ``split="symmetric"`` (default): n+ = n- = 2^(b-1) - 1 levels a side plus 0, i.e. 2^b - 1
  levels (b = 1: one level a side and no 0, since 2^0 - 1 = 0);
* ``split="asymmetric"``: 2^b - 1 non-zero levels shared between the signs in proportion to the
  number of positive and negative weights (at least one a side when 2^b - 1 >= 2), plus 0:
  2^b levels.
* ``probs="bin-mean"`` (default since adq v3): every level, the 0 level included, owns one
  equal-mass bin of the weight distribution. Within one sign the 0 level owns the innermost half
  share of |w| and level j (j = 1..n) the share between the |w|-quantiles at probabilities
  (j - 1/2)/(n + 1/2) and (j + 1/2)/(n + 1/2) (no 0 level: (j - 1)/n and j/n); the level is the
  mean of the weights in its bin, i.e. the quantile bins followed by one Lloyd (k-means) step.
  For a Gaussian at 2 bits ({-c, 0, +c}) this gives c = 1.09 sigma against the MSE-optimal
  1.22 sigma; the earlier ``"midpoint"`` gave c = median|w| = 0.67 sigma, about half of it,
  because its bins ignore the mass the 0 level takes.
* ``probs="midpoint"``: level j is the quantile of |w| at p_j = (j - 1/2) / n (the centres of n
  equal-mass bins of one sign, ignoring the 0 level; adq v1-v2); ``probs="uniform"``:
  p_j = j / (n + 1); linear interpolation (torch.quantile's default).
  Negative levels are -level(|w[w < 0]|). A sign with no weights mirrors the other sign.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from qbench.api import nearest_level_index

SPLITS = ("symmetric", "asymmetric")
PROBS = ("bin-mean", "midpoint", "uniform")


def _sorted64(values: Tensor) -> Tensor:
    """``values`` flattened, as float64, sorted ascending. On the CPU numpy's sort, several times
    faster than ``torch.sort`` on a layer's weights (ADQ's allocator sorts every layer once per
    candidate bit-width); sorted values do not depend on the algorithm, so the results stay bit for bit."""
    v = values.detach().reshape(-1).double()
    if v.device.type != "cpu":
        return v.sort().values
    return torch.from_numpy(np.sort(v.numpy(), kind="quicksort"))


def bin_means(values: Tensor, n: int, zero: bool) -> Tensor:
    """The n levels of one sign under ``probs="bin-mean"``: mean |w| of each equal-mass bin, the
    innermost half share going to the 0 level when ``zero`` (see the module docstring)."""
    v = _sorted64(values)
    m = v.numel()
    j = torch.arange(0, n + 1, dtype=torch.float64, device=v.device)
    edges = (j + 0.5) / (n + 0.5) if zero else j / n
    idx = torch.round(edges * m).long().clamp(0, m).tolist()
    csum = torch.cat([torch.zeros(1, dtype=torch.float64, device=v.device), v.cumsum(0)])
    out = []
    for k in range(n):
        lo, hi = idx[k], idx[k + 1]
        if hi > lo:
            out.append((csum[hi] - csum[lo]) / (hi - lo))
        else:  # an empty bin (very few weights): the quantile at the bin's centre
            p = (edges[k] + edges[k + 1]) / 2
            out.append(quantile_linear(v, p.reshape(1))[0])
    return torch.stack(out)


def quantile_probs(n: int, mode: str = "midpoint", device: torch.device | None = None) -> Tensor:
    """The n quantile probabilities of one sign (``"midpoint"`` / ``"uniform"``, module docstring)."""
    j = torch.arange(1, n + 1, dtype=torch.float64, device=device)
    if mode == "midpoint":
        return (j - 0.5) / n
    if mode == "uniform":
        return j / (n + 1)
    raise ValueError(f"adq: probs must be one of {PROBS}, got {mode!r}")


def quantile_linear(values: Tensor, p: Tensor) -> Tensor:
    """torch.quantile(values, p) with linear interpolation, without its input-size limit."""
    v = _sorted64(values)
    pos = p.to(v.device) * (v.numel() - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp_max(v.numel() - 1)
    return torch.lerp(v[lo], v[hi], pos - lo)


def levels_per_sign(bits: int, split: str, n_pos_w: int, n_neg_w: int) -> tuple[int, int, bool]:
    """(levels on the negative side, levels on the positive side, whether 0 is a level)."""
    if split == "symmetric":
        if bits == 1:
            return 1, 1, False
        side = 2 ** (bits - 1) - 1
        return side, side, True
    if split != "asymmetric":
        raise ValueError(f"adq: split must be one of {SPLITS}, got {split!r}")
    total = 2**bits - 1
    frac = n_pos_w / max(n_pos_w + n_neg_w, 1)
    if total == 1:
        return (0, 1, True) if frac >= 0.5 else (1, 0, True)
    n_pos = int(min(max(round(total * frac), 1), total - 1))
    return total - n_pos, n_pos, True


def sign_levels(values: Tensor, n: int, probs: str, zero: bool) -> Tensor:
    """The n magnitudes of one sign's levels, ascending."""
    if probs == "bin-mean":
        return bin_means(values, n, zero)
    return quantile_linear(values, quantile_probs(n, probs))


def init_codebook(w: Tensor, bits: int, split: str = "symmetric", probs: str = "bin-mean") -> tuple[Tensor, int]:
    """Sorted codebook (in w's dtype) and the index of the 0 level (-1 when 0 is not a level)."""
    flat = w.detach().reshape(-1)
    pos, neg = flat[flat > 0], -flat[flat < 0]
    n_neg, n_pos, zero = levels_per_sign(bits, split, pos.numel(), neg.numel())
    if pos.numel() == 0 and neg.numel() == 0:
        pos = neg = torch.ones(1, dtype=flat.dtype, device=flat.device)  # all-zero weight
    pos = pos if pos.numel() else neg
    neg = neg if neg.numel() else pos
    parts = []
    if n_neg:
        parts.append(-sign_levels(neg, n_neg, probs, zero).flip(0))
    if zero:
        parts.append(torch.zeros(1, dtype=torch.float64, device=flat.device))
    if n_pos:
        parts.append(sign_levels(pos, n_pos, probs, zero))
    codebook = torch.cat(parts).to(w.dtype)
    return codebook, (n_neg if zero else -1)


def nearest(w: Tensor, codebook: Tensor) -> Tensor:
    """Index of the nearest codeword of a sorted codebook (ties go to the smaller codeword)."""
    if codebook.numel() == 1:
        return torch.zeros_like(w, dtype=torch.long)
    return nearest_level_index(w, codebook)


def ema_update(codebook: Tensor, w: Tensor, idx: Tensor, momentum: float, zero_index: int) -> None:
    """In place: c_k <- m c_k + (1 - m) mean{w : idx = k} for assigned k; 0 and empty cells stay."""
    k = codebook.numel()
    flat_idx = idx.reshape(-1)
    counts = torch.bincount(flat_idx, minlength=k)
    sums = torch.zeros(k, dtype=torch.float64, device=codebook.device)
    sums.index_add_(0, flat_idx, w.detach().reshape(-1).double())
    move = counts > 0
    if zero_index >= 0:
        move[zero_index] = False
    means = (sums / counts.clamp_min(1)).to(codebook.dtype)
    codebook[move] = momentum * codebook[move] + (1 - momentum) * means[move]
