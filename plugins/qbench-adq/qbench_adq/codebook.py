"""ADQ's per-layer codebook: quantile initialisation, nearest-codeword assignment, EMA update.

Quantile initialisation (the paper: positive and negative weights separately, plus 0; the
probabilities and the level counts are not specified by the paper; qbench uses):

* ``split="symmetric"`` (default): n+ = n- = 2^(b-1) - 1 levels a side plus 0, i.e. 2^b - 1
  levels (b = 1: one level a side and no 0, since 2^0 - 1 = 0);
* ``split="asymmetric"``: 2^b - 1 non-zero levels shared between the signs in proportion to the
  number of positive and negative weights (at least one a side when 2^b - 1 >= 2), plus 0:
  2^b levels.
* Level j of a sign (j = 1..n) is the quantile of |w| over that sign's weights at probability
  p_j = (j - 1/2) / n (``probs="midpoint"``, the centres of n equal-mass bins; default) or
  p_j = j / (n + 1) (``probs="uniform"``), with linear interpolation (torch.quantile's default).
  Negative levels are -quantile(|w[w < 0]|, p_j). A sign with no weights mirrors the other sign.
"""
from __future__ import annotations

import torch
from torch import Tensor

from qbench.api import nearest_level_index

SPLITS = ("symmetric", "asymmetric")
PROBS = ("midpoint", "uniform")


def quantile_probs(n: int, mode: str = "midpoint", device: torch.device | None = None) -> Tensor:
    """The n quantile probabilities of one sign (see module docstring)."""
    j = torch.arange(1, n + 1, dtype=torch.float64, device=device)
    if mode == "midpoint":
        return (j - 0.5) / n
    if mode == "uniform":
        return j / (n + 1)
    raise ValueError(f"adq: probs must be one of {PROBS}, got {mode!r}")


def quantile_linear(values: Tensor, p: Tensor) -> Tensor:
    """torch.quantile(values, p) with linear interpolation, without its input-size limit."""
    v = values.reshape(-1).double().sort().values
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


def init_codebook(w: Tensor, bits: int, split: str = "symmetric", probs: str = "midpoint") -> tuple[Tensor, int]:
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
        parts.append(-quantile_linear(neg, quantile_probs(n_neg, probs)).flip(0))
    if zero:
        parts.append(torch.zeros(1, dtype=torch.float64, device=flat.device))
    if n_pos:
        parts.append(quantile_linear(pos, quantile_probs(n_pos, probs)))
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
