"""DoReFa-Net quantizers (Zhou et al., 2016, arXiv 1606.06160).

The paper's k-bit quantizer of a real number in [0, 1] is

    quantize_k(x) = round((2^k - 1) x) / (2^k - 1)        (gradient: straight-through)

Weights (k > 1) are squashed into [0, 1] with tanh and mapped back to [-1, 1]:

    w_q = 2 quantize_k( tanh(w) / (2 max|tanh(w)|) + 1/2 ) - 1

so every layer's weights lie on the 2^k-level grid {2i/(2^k-1) - 1 : i = 0..2^k-1}, whatever the
FP scale. Activations are clipped to [0, 1] and quantized with quantize_k.

Choices where the paper is silent (also in the README):

* not specified by the paper for signed inputs (ViT linear inputs after LayerNorm, a standardised
  image): qbench uses the symmetric variant 2 quantize_k((clip(x, -1, 1) + 1) / 2) - 1, the same
  2^k-level grid on [-1, 1] as the weights. Signedness is detected from the first batch
  (x.min() < 0) unless the ``signed`` param is given.
* the gradient of max|tanh(w)|: the formula is differentiated as written (the max stays in the
  graph); only the rounding uses the STE.
* ``scale``: the paper's weights live in [-1, 1] whatever the layer's FP scale (``scale="none"``),
  which the paper can afford because it trains from scratch with a normalisation after each layer.
  qbench fine-tunes a pretrained network, and a layer with no normalisation after it (a ViT's
  attention and MLP linears, which feed residual sums; a classifier) then sees weights at several times
  its FP norm, and the network's function is broken before QAT starts. The default
  ``scale="max_abs"`` (since dorefa v2 / pact v3 / adaqat v3) multiplies the levels by a constant
  per-tensor factor max|w_FP| fixed at initialisation: DoReFa's normalised weights
  tanh(w)/max|tanh w| are ~ w / max|w| for small weights, so the quantized layer starts at its FP
  scale. Before a BatchNorm in training mode the factor cancels; it also keeps the FP running
  statistics valid. Not in the paper. The 1-bit "mean" rule (sign(w) mean|w|) is already at the
  FP scale and takes no factor.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from qbench.api import ActivationQuantizer, WeightQuantizer, round_ste

WEIGHT_SCALES = ("none", "max_abs")
BINARY_MODES = ("mean", "grid")


def quantize_k(x: Tensor, k: int) -> Tensor:
    """DoReFa's quantize_k on [0, 1]: round((2^k-1) x) / (2^k-1), straight-through gradient."""
    n = float(2**k - 1)
    return round_ste(x * n) / n


def _sign_ste(w: Tensor) -> Tensor:
    """+1 for w >= 0, -1 otherwise (never 0, so a 1-bit weight has two levels); identity gradient."""
    s = torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))
    return w + (s - w).detach()


class DoReFaWeightQuantizer(WeightQuantizer):
    """DoReFa weights: tanh, normalise by max|tanh w| into [0, 1], quantize_k, map to [-1, 1].

    :param bits: k, the weight bit-width (read at every forward; an allocator may change it).
    :param layer: the layer (unused: DoReFa has no data-dependent state besides ``scale``).
    :param binary: k = 1 rule. "mean" (the paper's): sign(w) * mean|w| with the mean treated as a
        constant; "grid": the general formula, levels {-1, +1}.
    :param scale: "max_abs" (default: levels times max|w_FP|, fixed at init, so the layer keeps
        its FP scale; not in the paper) or "none" (the paper: levels in [-1, 1]).
    """

    per_channel = False

    def __init__(self, bits: int, layer: nn.Module | None = None, binary: str = "mean",
                 scale: str = "max_abs") -> None:
        super().__init__(bits)
        if binary not in BINARY_MODES:
            raise ValueError(f"dorefa-w: binary must be one of {BINARY_MODES}, got {binary!r}")
        if scale not in WEIGHT_SCALES:
            raise ValueError(f"dorefa-w: scale must be one of {WEIGHT_SCALES}, got {scale!r}")
        self.binary = binary
        self.scale_mode = scale
        self.register_buffer("scale", torch.tensor(1.0))

    def init_from(self, t: Tensor) -> None:
        if self.scale_mode == "max_abs":
            self.scale.fill_(float(t.abs().max().clamp_min(1e-12)))

    def _normalised(self, w: Tensor) -> Tensor:
        """tanh(w) / (2 max|tanh w|) + 1/2, in [0, 1]."""
        t = torch.tanh(w)
        return t / (2 * t.abs().max().clamp_min(1e-12)) + 0.5

    def forward(self, w: Tensor) -> Tensor:
        if not self.is_initialized:
            self.initialize(w)
        k = self.bits
        if k == 1 and self.binary == "mean":
            return _sign_ste(w) * w.abs().mean().detach()  # already at the FP scale
        return (2 * quantize_k(self._normalised(w), k) - 1) * self.scale

    def export(self, w: Tensor) -> dict[str, Tensor]:
        """Integer codes in [0, 2^k-1] and the look-up table of their values."""
        if not self.is_initialized:
            self.initialize(w)
        with torch.no_grad():
            k = self.bits
            if k == 1 and self.binary == "mean":
                codes = (w >= 0).to(torch.int64)
                e = float(w.abs().mean())
                lut = torch.tensor([-e, e], dtype=w.dtype)
            else:
                n = 2**k - 1
                codes = torch.round(self._normalised(w) * n).to(torch.int64)
                lut = (2 * torch.arange(n + 1, dtype=w.dtype) / n - 1) * self.scale
            return {"weight": self.hard(w), "codes": codes, "lut": lut}


class DoReFaActQuantizer(ActivationQuantizer):
    """DoReFa activations: quantize_k(clip(x, 0, 1)); signed inputs use the symmetric variant.

    :param bits: k, the activation bit-width.
    :param layer: unused.
    :param signed: force the signed (True) or unsigned (False) variant; ``None`` (default) decides
        from the first batch: signed when x.min() < 0.
    """

    def __init__(self, bits: int, layer: nn.Module | None = None, signed: bool | None = None) -> None:
        super().__init__(bits, signed)  # the host decides and saves signedness

    def forward(self, x: Tensor) -> Tensor:
        if not self.is_initialized:
            self.initialize(x)
        if self.signed:
            return 2 * quantize_k((torch.clamp(x, -1.0, 1.0) + 1) / 2, self.bits) - 1
        return quantize_k(torch.clamp(x, 0.0, 1.0), self.bits)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}"
