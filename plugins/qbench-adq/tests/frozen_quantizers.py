# Frozen copy of qbench_adq/quantizers.py at commit 3c63f33, before its speed-ups:
# the reference the faster code is pinned against.
"""``adq-w``: ADQ's per-layer non-uniform weight codebook with online EMA adaptation.

Training forward: assign each weight to its nearest codeword, output that codeword with a
straight-through gradient to w (d w_q / d w = 1), then move every assigned codeword toward the
mean of its weights: c_k <- m c_k + (1 - m) mean{w : nearest(w) = k}. The output of that
forward uses the codebook from before the update (quantise, then update, as in VQ-VAE).

Choices where the paper is silent (constructor parameters):

* Initialisation: quantiles of the layer's FP weights, see :mod:`qbench_adq.codebook`
  (``split``, ``probs``).
* EMA (not specified by the paper; qbench uses m = ``momentum`` = 0.9 since adq v3: a time
  constant of ~10 steps, so the codebook follows the weights within a short fine-tuning such as
  the quick suite's 48 QAT steps; 0.99 (~100 steps, v1-v2) barely moved it there. One update per
  training forward with gradients enabled, none in eval mode nor under ``torch.no_grad()`` (so extra
  probe forwards of a learning allocator do not move it); codewords with no assigned weight do not move; the 0 level never
  moves, so pruned weights stay exactly 0). ``ema=False`` freezes the codebook.
* Bits change (not specified by the paper; qbench re-initialises the codebook from the quantiles
  of the current weight at the next forward when ``self.bits`` differs from the bits it was
  built for; the EMA history is dropped).

The codebook is a buffer (not learned by gradient), one per layer (per tensor): the audit counts
distinct values per tensor, at most 2^b - 1 (symmetric) or 2^b (asymmetric).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from qbench.api import WeightQuantizer

from qbench_adq.codebook import PROBS, SPLITS, ema_update, init_codebook, nearest


class ADQWeightQuantizer(WeightQuantizer):
    """Nearest-codeword weights on a quantile-initialised, EMA-adapted per-layer codebook.

    :param bits: weight bits (2^b - 1 or 2^b levels, see ``split``).
    :param layer: the layer whose weight this quantizes (gives the device only).
    :param momentum: EMA momentum m.
    :param split: ``"symmetric"`` or ``"asymmetric"`` level split between signs.
    :param probs: ``"bin-mean"`` (equal-mass bins, 0 level included, each level its bin's mean),
        ``"midpoint"`` or ``"uniform"`` quantile probabilities (:mod:`qbench_adq.codebook`).
    :param ema: adapt the codebook online (False: keep the quantile codebook).
    """

    per_channel = False

    def __init__(self, bits: int, layer: nn.Module | None = None, momentum: float = 0.9,
                 split: str = "symmetric", probs: str = "bin-mean", ema: bool = True) -> None:
        super().__init__(bits)
        if split not in SPLITS:
            raise ValueError(f"adq-w: split must be one of {SPLITS}, got {split!r}")
        if probs not in PROBS:
            raise ValueError(f"adq-w: probs must be one of {PROBS}, got {probs!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"adq-w: momentum must be in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.split = split
        self.probs = probs
        self.ema = bool(ema)
        weight = getattr(layer, "weight", None)
        device = None if weight is None else weight.device
        dtype = torch.float32 if weight is None else weight.dtype
        self.register_buffer("codebook", torch.zeros(0, device=device, dtype=dtype), persistent=True)
        self.register_buffer("zero_index", torch.tensor(-1, device=device), persistent=True)
        self.register_buffer("codebook_bits", torch.tensor(0, device=device), persistent=True)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # The codebook's length depends on the bits it was built for: resize before loading.
        saved = state_dict.get(prefix + "codebook")
        if saved is not None and saved.shape != self.codebook.shape:
            self.codebook = torch.empty_like(saved, device=self.codebook.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def build(self, w: Tensor) -> None:
        """(Re-)initialise the codebook from the quantiles of ``w`` at the current bits."""
        codebook, zero = init_codebook(w, self.bits, self.split, self.probs)
        self.codebook = codebook.to(device=w.device, dtype=w.dtype)
        self.zero_index.fill_(zero)
        self.codebook_bits.fill_(self.bits)

    def init_from(self, w: Tensor) -> None:
        self.build(w)

    def assign(self, w: Tensor) -> Tensor:
        """Index of each weight's nearest codeword."""
        return nearest(w, self.codebook)

    def forward(self, w: Tensor) -> Tensor:
        if int(self.codebook_bits) != self.bits:
            self.build(w.detach())
        update = self.training and self.ema and torch.is_grad_enabled()
        with torch.no_grad():
            idx = self.assign(w)
            w_q = self.codebook[idx]
            if update:
                ema_update(self.codebook, w, idx, self.momentum, int(self.zero_index))
        # w_q exactly in the forward (w + (w_q - w) would not round to w_q), identity gradient
        return w_q + (w - w.detach())

    def export(self, w: Tensor) -> dict[str, Tensor]:
        """Codes (indices into the look-up table) and the codebook: weight = codebook[codes]."""
        update = self.training and self.ema and torch.is_grad_enabled()
        with torch.no_grad():
            idx = self.assign(w)
            codes = idx.to(torch.uint8 if self.codebook.numel() <= 256 else torch.int32)
            return {"weight": self.codebook[idx], "codes": codes, "codebook": self.codebook.clone()}

    def extra_repr(self) -> str:
        return (f"bits={self.bits}, levels={self.codebook.numel()}, split={self.split}, "
                f"momentum={self.momentum}")
