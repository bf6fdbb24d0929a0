"""APoT quantizers: additive powers-of-two levels, learnable clipping alpha, reparameterized
clipping function (RCF), weight normalisation (Li, Dong, Wang, ICLR 2020).

RCF: x^ = alpha * Proj(clamp(x / alpha, lo, 1)), Proj = nearest level of Q(1, B) (see
:mod:`qbench_apot.levels`), lo = -1 for signed, 0 for unsigned. With the STE through Proj,
autograd gives the paper's clipping-threshold gradient

    d x^ / d alpha = sign(x)                     if |x| > alpha   (clipped)
                   = Proj(x / alpha) - x / alpha  otherwise

and d x^ / d x = 1 inside the clipping range, 0 outside (0 also below 0 for unsigned inputs).

* ``apot-w``: signed, levels +-Q(1, b - 1) (sign bit + b - 1 magnitude bits; 2^b - 1 values).
  The weight is normalised first, w_n = (w - mean) / std over the layer (the paper's weight
  normalisation), then quantized with alpha in units of std. One alpha per layer.
* ``apot-a``: unsigned, levels Q(1, b), one alpha per layer.

Not specified by the paper; qbench uses (each a parameter):

* ``rescale="std"`` (weights): the quantized normalised weight is multiplied back by std, so a
  layer without a following BatchNorm (ViT linears) keeps its scale; the deployed weight is
  std * alpha * (+-level). The mean is not added back, as in the paper. ``"none"`` is the
  authors' code (normalised weight used as is, BN absorbs the scale); ``"affine"`` adds the mean.
* ``alpha_init``: weights 3.0 (in std units: the authors' code); activations ``"mse"``: the alpha
  minimising the quantization MSE on the calibration batch over a grid (the authors' code uses a
  constant tuned to ImageNet ResNets, 6.0 or 8.0; a float here restores that). ``"max"``: max|x|.
* ``clip_weight_grad=True``: weights outside the clipping range get no gradient (the authors'
  final code; an earlier release passed it through, ``False``).
* ``detach_stats=False``: gradient flows through the normalisation's mean and std (the
  authors' final code); ``True`` treats them as constants.
* ``signed`` (activations): inputs with negatives in the calibration batch (ViT, an 8-bit first
  layer) use the signed weight levels +-Q(1, b - 1); every quantized activation in the paper
  follows a ReLU. ``None`` decides from the calibration batch; the decision is saved.
* alpha is floored at 1e-8 in the forward pass; quantizer parameters get no weight decay
  (qbench's rule; the authors' code gives alpha weight decay 1e-4 / 2e-5).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from qbench.api import (
    ActivationQuantizer,
    WeightQuantizer,
    calibration_sample,
    clip_grid,
    mse_search,
    nearest_level_index,
)

from .levels import apot_levels
from .rcf import rcf_quantize

ALPHA_MIN = 1e-8
RESCALE_MODES = ("std", "none", "affine")


def mse_alpha(x: Tensor, quantize: Callable[[Tensor, Tensor], Tensor], points: int = 100) -> float:
    """The alpha among ``points`` even steps of (0, max|x|] minimising the quantization MSE
    (on the host's calibration sample of ``x``; the first on ties)."""
    top = float(x.detach().abs().max().clamp_min(ALPHA_MIN))
    return mse_search(calibration_sample(x), quantize, clip_grid(top, points))


def _init_alpha(spec: float | str, x: Tensor, quantize: Callable[[Tensor, Tensor], Tensor]) -> float:
    if spec == "mse":
        return mse_alpha(x, quantize)
    if spec == "max":
        return float(x.abs().max().clamp_min(ALPHA_MIN))
    return float(spec)


class ApotWeightQuantizer(WeightQuantizer):
    """APoT weights: normalise, clip at alpha, project onto +-Q(1, b - 1) (2^b - 1 values).

    :param bits: weight bits (>= 2: one sign bit plus b - 1 magnitude bits).
    :param layer: the conv / linear layer (unused: alpha is per tensor).
    :param alpha_init: 3.0 (std units, the authors' code), ``"mse"`` or ``"max"``.
    :param rescale: ``"std"`` (default), ``"none"`` (authors' code) or ``"affine"``.
    :param clip_weight_grad: zero gradient for weights outside the clipping range.
    :param detach_stats: treat the normalisation's mean and std as constants.
    """

    def __init__(self, bits: int, layer: nn.Module | None = None, alpha_init: float | str = 3.0,
                 rescale: str = "std", clip_weight_grad: bool = True, detach_stats: bool = False,
                 ) -> None:
        super().__init__(bits)
        if rescale not in RESCALE_MODES:
            raise ValueError(f"apot-w: rescale must be one of {RESCALE_MODES}, got {rescale!r}")
        self.alpha_init = alpha_init
        self.rescale = rescale
        self.clip_weight_grad = bool(clip_weight_grad)
        self.detach_stats = bool(detach_stats)
        self.alpha = nn.Parameter(torch.tensor(3.0))

    def _levels(self, ref: Tensor) -> Tensor:
        if self.bits < 2:
            raise ValueError("apot-w: signed APoT weights need >= 2 bits (sign + magnitude)")
        return apot_levels(self.bits - 1, signed=True, device=ref.device, dtype=ref.dtype)

    def _normalise(self, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        src = w.detach() if self.detach_stats else w
        mean, std = src.mean(), src.std().clamp_min(1e-12)
        return (w - mean) / std, mean, std

    def init_from(self, w: Tensor) -> None:
        wn, _, _ = self._normalise(w)
        levels = self._levels(w)
        self.alpha.fill_(_init_alpha(self.alpha_init, wn,
                                     lambda t, a: rcf_quantize(t, a, levels, signed=True)))

    def forward(self, w: Tensor) -> Tensor:
        wn, mean, std = self._normalise(w)
        alpha = self.alpha.clamp_min(ALPHA_MIN)
        q = rcf_quantize(wn, alpha, self._levels(w), signed=True)
        if not self.clip_weight_grad:  # value unchanged; gradient 1 for clipped weights too
            q = q + (wn - wn.detach()) * (wn.detach().abs() > alpha.detach())
        if self.rescale == "none":
            return q
        return q * std + mean if self.rescale == "affine" else q * std

    def export(self, w: Tensor) -> dict[str, Tensor]:
        """Signed level indices into the LUT ``levels`` and the scale: weight = levels[codes] *
        scale (+ offset when ``rescale="affine"``)."""
        with torch.no_grad():
            wn, mean, std = self._normalise(w)
            alpha = self.alpha.clamp_min(ALPHA_MIN)
            levels = self._levels(w)
            codes = nearest_level_index(torch.clamp(wn / alpha, -1.0, 1.0), levels)
            scale = alpha * (1.0 if self.rescale == "none" else std)
            out = {"weight": self.hard(w), "codes": codes.to(torch.int32), "levels": levels.clone(),
                   "scale": scale.detach().clone()}
            if self.rescale == "affine":
                out["offset"] = mean.detach().clone()
            return out

    def extra_repr(self) -> str:
        return f"bits={self.bits}, rescale={self.rescale}"


class ApotActQuantizer(ActivationQuantizer):
    """APoT activations: clip at alpha, project onto Q(1, b) (2^b values; signed +-Q(1, b - 1)).

    :param bits: activation bits.
    :param layer: the layer whose input is quantized (unused).
    :param alpha_init: ``"mse"`` (default), ``"max"``, or a constant (authors' code: 6.0 / 8.0).
    :param signed: force signed / unsigned levels; ``None`` decides from the calibration batch.
    """

    def __init__(self, bits: int, layer: nn.Module | None = None, alpha_init: float | str = "mse",
                 signed: bool | None = None) -> None:
        super().__init__(bits, signed)  # the host decides and saves signedness
        self.alpha_init = alpha_init
        self.alpha = nn.Parameter(torch.tensor(1.0))

    def _levels(self, ref: Tensor) -> Tensor:
        if self.signed:
            if self.bits < 2:
                raise ValueError("apot-a: signed APoT activations need >= 2 bits")
            return apot_levels(self.bits - 1, signed=True, device=ref.device, dtype=ref.dtype)
        return apot_levels(self.bits, signed=False, device=ref.device, dtype=ref.dtype)

    def init_from(self, x: Tensor) -> None:
        levels = self._levels(x)
        self.alpha.fill_(_init_alpha(self.alpha_init, x,
                                     lambda t, a: rcf_quantize(t, a, levels, self.signed)))

    def forward(self, x: Tensor) -> Tensor:
        return rcf_quantize(x, self.alpha.clamp_min(ALPHA_MIN), self._levels(x), self.signed)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}"
