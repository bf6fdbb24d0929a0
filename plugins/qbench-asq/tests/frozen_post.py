# Frozen copy of qbench_asq/post.py at commit 3c63f33, before its speed-ups:
# the reference the faster code is pinned against.
"""POST: Power-Of-Square-root-of-Two weight quantization (Zhou et al., arXiv 2504.17263, 2025).

The paper's levels are ``alpha * {0, +-1, +-r^-1, ..., +-r^-K}`` with ``r = sqrt(2)`` and
``K = 2^(b-1) - 1``: ``2^(b-1)`` magnitudes a sign plus zero, i.e. ``2^b + 1`` levels, one more
than a b-bit code holds. Not specified by the paper; qbench uses ``drop="negative"``: the
smallest-magnitude NEGATIVE level ``-r^-K`` is removed, leaving exactly ``2^b`` levels
(``drop="pair"`` removes ``+-r^-K`` instead, leaving ``2^b - 1``, symmetric). With the default:

* b = 2: ``{-1, 0, r^-1, 1}`` = {-1, 0, 0.7071, 1}
* b = 3: ``{-1, -r^-1, -r^-2, 0, r^-3, r^-2, r^-1, 1}`` = {-1, -0.7071, -0.5, 0, 0.3536, 0.5, 0.7071, 1}
* b = 4: ``{-r^0..-r^-6, 0, r^-7..r^0}``: negatives 1, 0.7071, 0.5, 0.3536, 0.25, 0.1768, 0.125;
  positives the same plus 0.0884 (16 levels).
* b = 1 degenerates to {0, 1} (POST is not meant for 1 bit).

Adjacent nonzero magnitudes differ by a factor sqrt(2). The levels live in a look-up table
buffer ``lut`` (sorted, rebuilt when ``bits`` changes; not saved: it is a function of bits).

Forward: ``u = clamp(w / alpha_c, -1, 1)``, projected on the nearest LUT level (ties go to the
lower level), STE: ``dw^/dw = 1`` for ``|w/alpha| <= 1``, else 0; ``dw^/dalpha = q - u`` inside,
``+-1`` outside (LSQ's rule on the normalised grid). ``alpha`` is per output channel, initialised
at the 0.99 quantile of ``|w_c|`` (torch.quantile, linear interpolation), and its gradient is
multiplied by ``g = 1/sqrt(N_c * Q_P)``, ``N_c`` = weights per output channel, ``Q_P = 2^(b-1) - 1``
(at least 1): not specified by the paper ("LSQ-style"); qbench uses LSQ's weight formula.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from qbench.api import WeightQuantizer, lsq_grad_scale


def nearest_level_index(u: Tensor, levels: Tensor) -> Tensor:  # the host's version before its look-up tables
    mids = (levels[1:] + levels[:-1]) / 2
    return torch.bucketize(u.detach().contiguous(), mids.contiguous())

DROPS = ("negative", "pair")
SQRT2 = math.sqrt(2.0)


def post_levels(bits: int, drop: str = "negative", dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> Tensor:
    """The sorted POST level set (normalised, alpha = 1) for ``bits``; see the module docstring."""
    if drop not in DROPS:
        raise ValueError(f"POST drop must be one of {DROPS}, got {drop!r}")
    k_max = 2 ** (bits - 1) - 1
    mags = [2.0 ** (-k / 2.0) for k in range(k_max + 1)]  # r^-k, r = sqrt(2), computed exactly
    pos, neg = list(mags), [-m for m in mags]
    neg.pop()  # -r^-K: the smallest-magnitude negative level
    if drop == "pair":
        pos.pop()
    return torch.tensor(sorted(neg + [0.0] + pos), dtype=dtype, device=device)


def _scale_grad_exact(t: Tensor, g: float) -> Tensor:
    """Value exactly ``t`` (bit for bit), gradient multiplied by ``g``."""
    tg = t * g
    return t.detach() + (tg - tg.detach())


def post_decode(exported: dict[str, Tensor]) -> Tensor:
    """Rebuild the weight from :meth:`POSTWeightQuantizer.export`: ``alpha_c * lut[code]``."""
    codes = exported["codes"].long()
    alpha = exported["alpha"].reshape((-1,) + (1,) * (codes.dim() - 1))
    return exported["lut"][codes] * alpha


class POSTWeightQuantizer(WeightQuantizer):
    """POST weight quantizer (``post-w``): per-channel alpha times a power-of-sqrt(2) LUT level.

    :param bits: weight bits (read at every forward; the LUT is rebuilt when it changes).
    :param layer: the Conv2d / Linear whose weight this quantizes (output channels = dim 0).
    :param drop: which level to remove from the paper's 2^b + 1: "negative" (default) or "pair".
    :param init_quantile: quantile of |w_c| that initialises alpha_c (paper: 0.99).
    :param grad_scale: apply the LSQ-style gradient scale to alpha (default True).
    :param eps: lower bound of alpha in the forward pass (avoids division by zero).
    """

    per_channel = True

    def __init__(self, bits: int, layer: nn.Module, drop: str = "negative", init_quantile: float = 0.99,
                 grad_scale: bool = True, eps: float = 1e-8) -> None:
        super().__init__(bits)
        if drop not in DROPS:
            raise ValueError(f"POST drop must be one of {DROPS}, got {drop!r}")
        weight = layer.weight
        self.drop, self.init_quantile, self.use_grad_scale, self.eps = drop, init_quantile, grad_scale, eps
        self.alpha = nn.Parameter(torch.ones(weight.shape[0], dtype=weight.dtype, device=weight.device))
        self.register_buffer("lut", post_levels(self.bits, drop, weight.dtype, weight.device), persistent=False)
        self._lut_bits = self.bits

    def levels(self) -> Tensor:
        """The current LUT (rebuilt here if ``bits`` changed since it was built)."""
        if self._lut_bits != self.bits or self.lut.dtype != self.alpha.dtype:
            self.lut = post_levels(self.bits, self.drop, self.alpha.dtype, self.alpha.device)
            self._lut_bits = self.bits
        return self.lut

    def init_from(self, w: Tensor) -> None:
        """alpha_c = the ``init_quantile`` quantile of |w_c| (per output channel)."""
        flat = w.abs().reshape(w.shape[0], -1).to(torch.float32)
        self.alpha.copy_(torch.quantile(flat, self.init_quantile, dim=1).clamp_min(self.eps))

    def _alpha(self, w: Tensor) -> Tensor:
        return self.alpha.clamp_min(self.eps).reshape((-1,) + (1,) * (w.dim() - 1))

    def codes(self, w: Tensor) -> Tensor:
        """Index into the LUT of each weight (nearest level of clamp(w/alpha, -1, 1))."""
        lut = self.levels()
        u = torch.clamp(w.detach() / self._alpha(w).detach(), -1.0, 1.0)
        return nearest_level_index(u, lut)

    def forward(self, w: Tensor) -> Tensor:
        alpha = self._alpha(w)
        if self.use_grad_scale:
            q_p = max(2 ** (self.bits - 1) - 1, 1)
            alpha = _scale_grad_exact(alpha, lsq_grad_scale(w[0].numel(), q_p))
        u = torch.clamp(w / alpha, -1.0, 1.0)
        level = self.levels()[self.codes(w)]
        q = level + (u - u.detach())  # value: the level exactly; gradient: STE through the clamp
        return q * alpha

    def export(self, w: Tensor) -> dict[str, Tensor]:
        """Deployable form: b-bit LUT index per weight (uint8), the LUT, and alpha per channel.

        :func:`post_decode` of this dict equals :meth:`hard` bit for bit.
        """
        with torch.no_grad():
            codes = self.codes(w)
            dtype = torch.uint8 if self.bits <= 8 else torch.int32
            return {"codes": codes.to(dtype), "lut": self.levels().clone(),
                    "alpha": self.alpha.detach().clamp_min(self.eps).clone(),
                    "bits": torch.tensor(self.bits)}

    def extra_repr(self) -> str:
        return f"bits={self.bits}, levels={self.levels().numel()}, drop={self.drop!r}"
