"""``n2uq-a``: the N2UQ activation quantizer (Liu et al., CVPR 2022).

y = s * (F(x / s) - offset), with F the N2UQ map (:mod:`qbench_n2uq.function`): learnable
thresholds on the input axis, uniform outputs k * 2/(2^b - 1) on [0, 2].

Choices where the paper is silent (each one a constructor parameter):

* Input scale s (not specified by the paper; qbench uses a learnable scalar s, initialised from
  the first calibration batch by minimising the squared error of the initial uniform quantizer
  over clipping values c = r * max|x|, r in [0.05, 1] (``init="mse"``), or c = the
  ``init_quantile`` quantile of |x| (``init="quantile"``); s = c/2 unsigned, s = c signed).
  The output is multiplied back by s (``rescale_output=True``), so the next layer sees the FP
  scale it was trained with; with ``rescale_output=False`` the output is the paper's [0, 2] grid.
* Signed inputs (ViT inputs after LayerNorm; not specified by the paper; qbench shifts the
  output grid by -1: outputs k * 2/(2^b-1) - 1 on [-1, 1], t0 initialised at -1). Signedness is
  the host's shared decision (x.min() < 0 on the calibration batch unless ``signed`` is given,
  saved in the state dict).
* Positive widths (not specified by the paper; qbench uses a_i = max(|a~_i|, min_width * step)
  with a~_i the raw parameter, so dL/da~_i = sign(a~_i) dL/da_i above the floor).
* Gradient scale (not specified by the paper): the scale s gets LSQ's g = 1/sqrt(N * (2^b - 1)),
  N = features per sample (``grad_scale="lsq"``; ``"none"`` disables it). The thresholds (t0 and
  the widths) take the paper's GSTE gradient unscaled (``threshold_grad_scale="none"``, the
  default since method v3): under LSQ's g they moved at most ~0.1% in a whole quick-suite QAT,
  which left the non-uniform part inactive (README, "Method versions"); ``"lsq"`` restores it.
* A change of ``self.bits`` (not specified by the paper; qbench re-derives the thresholds at the
  next forward so that the new GSTE map interpolates the learned one: the new boundaries are
  where the old piecewise-linear map F reaches the new output levels j * 2/(2^b' - 1); t0 and
  the covered range [t0, t_n] are kept). The widths live in one parameter of 2^max_bits - 1
  entries (the first 2^b - 1 are used), so the optimiser keeps the same tensor (and its state
  shape) across changes. ``max_bits`` defaults to the construction bits, so a fixed-bit model
  stores no unused widths (the packed-size audit counts every parameter); a learning allocator
  that may raise bits needs ``max_bits`` set, else the forward raises a ValueError.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from qbench.api import (
    ActivationQuantizer,
    calibration_sample,
    features_per_sample,
    grad_scale,
    lsq_grad_scale,
    mse_search,
)

from .function import n2uq_activation, segment_boundaries, thresholds_from_boundaries

_INIT_MODES = ("mse", "quantile")
_GRAD_SCALES = ("lsq", "none")
#: values of the calibration batch the scale search uses (the host's seeded random draw).
_INIT_SAMPLE = 1 << 18


class N2UQActivationQuantizer(ActivationQuantizer):
    """N2UQ activations: learned non-uniform thresholds, uniform output levels.

    :param bits: activation bits; 2^bits - 1 thresholds, 2^bits output levels.
    :param layer: the layer whose input this quantizes (gives the device only).
    :param signed: force the signed / unsigned grid; ``None`` decides from the calibration batch.
    :param learn_scale: learn the input scale s (else it stays at its calibrated value).
    :param rescale_output: multiply the [0, 2] grid back by s.
    :param max_bits: largest bit-width a later change of ``bits`` may reach (default: ``bits``).
    :param init: ``"mse"`` or ``"quantile"``: how s is calibrated.
    :param init_quantile: the quantile of |x| used as clipping value when ``init="quantile"``.
    :param grad_scale: ``"lsq"`` or ``"none"``: gradient scale on s.
    :param threshold_grad_scale: ``"none"`` (default: the GSTE gradient as is) or ``"lsq"``:
        gradient scale on t0 and the widths.
    :param min_width: floor on each width, as a fraction of the output step 2/(2^b - 1).
    """

    def __init__(self, bits: int, layer: nn.Module | None = None, signed: bool | None = None,
                 learn_scale: bool = True, rescale_output: bool = True, max_bits: int | None = None,
                 init: str = "mse", init_quantile: float = 0.999, grad_scale: str = "lsq",
                 min_width: float = 1e-3, threshold_grad_scale: str = "none") -> None:
        super().__init__(bits, signed)  # the host decides signedness before init_from, saves it
        if init not in _INIT_MODES:
            raise ValueError(f"n2uq-a: init must be one of {_INIT_MODES}, got {init!r}")
        if grad_scale not in _GRAD_SCALES:
            raise ValueError(f"n2uq-a: grad_scale must be one of {_GRAD_SCALES}, got {grad_scale!r}")
        if threshold_grad_scale not in _GRAD_SCALES:
            raise ValueError(f"n2uq-a: threshold_grad_scale must be one of {_GRAD_SCALES}, "
                             f"got {threshold_grad_scale!r}")
        self.threshold_grad_scale = threshold_grad_scale
        self.rescale_output = bool(rescale_output)
        self.max_bits = max(int(max_bits) if max_bits is not None else self.bits, self.bits)
        self.init_mode = init
        self.init_quantile = float(init_quantile)
        self.grad_scale_mode = grad_scale
        self.min_width = float(min_width)
        weight = getattr(layer, "weight", None)
        device = None if weight is None else weight.device
        self.t0 = nn.Parameter(torch.zeros((), device=device))
        self.widths_raw = nn.Parameter(torch.ones(2**self.max_bits - 1, device=device))
        self.scale = nn.Parameter(torch.ones((), device=device), requires_grad=bool(learn_scale))
        self.register_buffer("built_bits", torch.tensor(self.bits), persistent=True)
        self._reset_uniform()

    # -- geometry ----------------------------------------------------------------------------
    @property
    def n_thresholds(self) -> int:
        return 2**self.bits - 1

    @property
    def offset(self) -> float:
        """Shift of the output grid: 0 for [0, 2], 1 for the signed grid [-1, 1]."""
        return 1.0 if self.signed else 0.0

    def widths(self) -> Tensor:
        """The positive widths a_1..a_n in use (n = 2^bits - 1), without gradient scaling."""
        n = self.n_thresholds
        return self.widths_raw[:n].abs().clamp_min(self.min_width * 2.0 / n)

    def boundaries(self) -> Tensor:
        """Segment boundaries t_0..t_n in the scaled input domain x / s."""
        return segment_boundaries(self.t0, self.widths())

    def thresholds(self) -> Tensor:
        """The thresholds T_1..T_n in the scaled input domain x / s."""
        return thresholds_from_boundaries(self.boundaries())

    @torch.no_grad()
    def _reset_uniform(self) -> None:
        """Uniform thresholds: t0 = -offset, every width 2/(2^b - 1)."""
        n = self.n_thresholds
        self.t0.fill_(-self.offset)
        self.widths_raw.fill_(2.0 / n)
        self.built_bits.fill_(self.bits)

    @torch.no_grad()
    def _rederive(self) -> None:
        """Re-derive t0 and the widths for a new ``self.bits`` (rule in the module docstring)."""
        if self.bits > self.max_bits:
            raise ValueError(f"n2uq-a: bits={self.bits} exceeds max_bits={self.max_bits}; "
                             "construct the quantizer with a larger max_bits.")
        old_n = 2 ** int(self.built_bits) - 1
        a_old = self.widths_raw[:old_n].abs().clamp_min(self.min_width * 2.0 / old_n)
        old = segment_boundaries(self.t0, a_old)
        n = self.n_thresholds
        # position of the new output level j*2/n on the old output axis, in units of old steps
        pos = torch.arange(n + 1, dtype=old.dtype, device=old.device) * (old_n / n)
        j = pos.floor().clamp(0, old_n - 1).long()
        new = old[j] + (pos - j) * (old[j + 1] - old[j])
        self.t0.copy_(new[0])
        self.widths_raw[:n].copy_(new[1:] - new[:-1])
        self.built_bits.fill_(self.bits)

    # -- calibration -------------------------------------------------------------------------
    def init_from(self, x: Tensor) -> None:
        self._reset_uniform()  # t0 = -offset needs the signedness the host has just decided
        flat = calibration_sample(x, _INIT_SAMPLE)
        mag = flat.abs() if self.signed else flat.clamp_min(0)
        full = x.detach().abs() if self.signed else x.detach().clamp_min(0)
        top = float(full.max()) if full.numel() else 0.0  # the whole batch's max, not the sample's
        if top <= 0:
            self.scale.fill_(1.0)
            return
        if self.init_mode == "quantile":
            clip = torch.quantile(mag, self.init_quantile).clamp_min(top * 1e-3).reshape(1)
        else:
            clip = top * torch.linspace(0.05, 1.0, 40, device=flat.device)
        s = clip if self.signed else clip / 2
        self.scale.fill_(mse_search(flat, self._uniform_q, s))

    def _uniform_q(self, x: Tensor, s: Tensor) -> Tensor:
        """The initial (uniform-threshold) quantizer at scale s, for calibration."""
        n, off = self.n_thresholds, self.offset
        step = 2.0 / n
        k = torch.clamp(torch.floor((x / s + off) / step + 0.5), 0, n)
        return (k * step - off) * s

    # -- forward -----------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        if int(self.built_bits) != self.bits:
            self._rederive()
        n = self.n_thresholds
        g_lsq = lsq_grad_scale(features_per_sample(x), n)
        g = g_lsq if self.grad_scale_mode == "lsq" else 1.0
        g_t = g_lsq if self.threshold_grad_scale == "lsq" else 1.0
        s = grad_scale(self.scale, g).abs().clamp_min(1e-8)
        t0 = grad_scale(self.t0, g_t)
        widths = grad_scale(self.widths_raw[:n], g_t).abs().clamp_min(self.min_width * 2.0 / n)
        return n2uq_activation(x, s, t0, widths, self.offset, self.rescale_output)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}, rescale_output={self.rescale_output}"
