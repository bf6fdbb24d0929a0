"""LSQ+ quantizers (Bhalgat et al., "LSQ+: Improving low-bit quantization through learnable
offsets and better initialization", 2020).

LSQ+ extends LSQ with a learnable offset so that an unsigned b-bit grid can cover activations with
negative values (Swish, GELU, LayerNorm outputs) without spending a sign bit::

    x^ = round(clamp((x - beta) / s, n, p)) * s + beta

STE gradients (z = (x - beta) / s, "inside" means n <= z <= p):

* d x^ / d x    = 1 inside, 0 outside;
* d x^ / d s    = round(z) - z inside, n below, p above;
* d x^ / d beta = 0 inside, 1 outside (both sides).

Both s and beta get LSQ's gradient scale g = 1 / sqrt(N * p).

* ``lsqplus-a`` (activations): n = 0, p = 2^b - 1 (an unsigned grid shifted by beta), per tensor.
  Init from the first calibration batch (default ``init="mse"``, the init of the paper's headline
  results): the min-max start s = (max - min) / (p - n), beta = min - n * s, refined by
  minimising the reconstruction MSE on the batch over (s, beta); ``init="minmax"`` keeps the
  min-max start (the paper's simpler alternative).
* ``lsqplus-w`` (weights): symmetric signed, n = -2^(b-1), p = 2^(b-1) - 1, no offset (beta = 0,
  as in the paper: a weight offset would cost an extra term at inference). Init
  s = max(|mean - 3 std|, |mean + 3 std|) / 2^(b-1) (the paper's weight init).

Not specified by the paper; qbench uses:

* N in the gradient scale: the weight tensor's numel (per channel: one channel's numel); for
  activations the number of features of one sample (numel / batch size).
* s is floored at 1e-8 in the forward pass to keep the division defined.
* MSE init (``init="mse"``): Adam, lr 1e-2 relative to the min-max step, ``mse_steps`` steps,
  on at most 65536 values of the calibration batch, a seeded random draw (the host's
  :func:`qbench.contract.quant.calibration.calibration_sample`).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from qbench.api import (
    ActivationQuantizer,
    WeightQuantizer,
    calibration_sample,
    features_per_sample,
    grad_scale,
    int_range,
    lsq_grad_scale,
    round_ste,
)

#: Floor for the step size in the forward pass (keeps (x - beta) / s finite).
S_MIN = 1e-8
#: The paper's weight-init width in standard deviations.
WEIGHT_INIT_STDS = 3.0


def lsqplus_quantize(x: Tensor, s: Tensor, beta: Tensor | float, n: int, p: int) -> Tensor:
    """x^ = round(clamp((x - beta) / s, n, p)) * s + beta, with the STE gradients of LSQ+.

    Autograd through ``clamp`` and :func:`round_ste` yields exactly the gradients listed in the
    module docstring (d/ds = round(z) - z inside, n or p outside; d/dbeta = 1[outside]).
    Gradient scaling of ``s`` / ``beta`` is the caller's job.
    """
    z = (x - beta) / s
    return round_ste(torch.clamp(z, n, p)) * s + beta


class LsqPlusWeightQuantizer(WeightQuantizer):
    """LSQ+ weights: symmetric signed grid [-2^(b-1), 2^(b-1) - 1] * s, learnable s, no offset.

    :param bits: weight bits.
    :param layer: the conv / linear layer (its weight shape sizes a per-channel s).
    :param per_channel: one s per output channel. Not specified by the paper (LSQ and LSQ+
        use one s per tensor); qbench's default is per tensor.
    :param init_stds: k in s = max(|mean - k std|, |mean + k std|) / 2^(b-1); the paper uses 3.
    """

    def __init__(self, bits: int, layer: nn.Module, per_channel: bool = False,
                 init_stds: float = WEIGHT_INIT_STDS) -> None:
        super().__init__(bits)
        self.per_channel = bool(per_channel)
        self.init_stds = float(init_stds)
        w = layer.weight
        shape = (w.shape[0],) + (1,) * (w.dim() - 1) if self.per_channel else ()
        self.s = nn.Parameter(torch.ones(shape, dtype=w.dtype, device=w.device))

    def _stats(self, w: Tensor) -> tuple[Tensor, Tensor]:
        if self.per_channel:
            flat = w.reshape(w.shape[0], -1)
            shape = self.s.shape
            return flat.mean(1).reshape(shape), flat.std(1, unbiased=False).reshape(shape)
        return w.mean(), w.std(unbiased=False)

    def init_from(self, w: Tensor) -> None:
        mean, std = self._stats(w)
        k = self.init_stds
        s = torch.maximum((mean - k * std).abs(), (mean + k * std).abs()) / 2 ** (self.bits - 1)
        self.s.copy_(s.clamp_min(S_MIN))

    def forward(self, w: Tensor) -> Tensor:
        q_n, q_p = int_range(self.bits, signed=True)
        numel = w[0].numel() if self.per_channel else w.numel()
        s = grad_scale(self.s, lsq_grad_scale(numel, q_p)).clamp_min(S_MIN)
        return lsqplus_quantize(w, s, 0.0, -q_n, q_p)

    def export(self, w: Tensor) -> dict[str, Tensor]:
        """Integer codes in [-2^(b-1), 2^(b-1) - 1] and the step: weight = codes * scale."""
        q_n, q_p = int_range(self.bits, signed=True)
        with torch.no_grad():
            s = self.s.clamp_min(S_MIN)
            codes = torch.round(torch.clamp(w / s, -q_n, q_p))
            return {"weight": codes * s, "codes": codes.to(torch.int32), "scale": s.detach().clone()}


class LsqPlusActQuantizer(ActivationQuantizer):
    """LSQ+ activations: unsigned grid {0..2^b - 1} * s shifted by a learnable offset beta.

    The offset makes the grid asymmetric and lets it cover negative inputs, so no ``signed``
    option is needed: beta takes the place of LSQ's sign decision.

    :param bits: activation bits.
    :param layer: the layer whose input is quantized (unused: s and beta are per tensor).
    :param init: ``"mse"`` (default, the paper's MSE-based init: the min-max start refined by
        minimising reconstruction MSE on the calibration batch) or ``"minmax"``
        (s = (max - min) / (2^b - 1), beta = min).
    :param mse_steps: optimiser steps of the MSE init.
    """

    def __init__(self, bits: int, layer: nn.Module | None = None, init: str = "mse",
                 mse_steps: int = 200) -> None:
        super().__init__(bits)
        if init not in ("minmax", "mse"):
            raise ValueError(f"lsqplus-a: init must be 'minmax' or 'mse', got {init!r}")
        self.init = init
        self.mse_steps = int(mse_steps)
        self.s = nn.Parameter(torch.tensor(1.0))
        self.beta = nn.Parameter(torch.tensor(0.0))

    def init_from(self, x: Tensor) -> None:
        n, p = 0, 2**self.bits - 1
        lo, hi = x.min(), x.max()
        s = ((hi - lo) / (p - n)).clamp_min(S_MIN)
        self.s.copy_(s)
        self.beta.copy_(lo - n * s)
        if self.init == "mse":
            self._refine_mse(x, n, p)

    def _refine_mse(self, x: Tensor, n: int, p: int) -> None:
        """Minimise ||x^ - x||^2 over (s, beta) on the calibration values (the paper's MSE init)."""
        flat = calibration_sample(x)
        scale = float(self.s)
        # Optimise in units of the min-max step so one learning rate fits every layer.
        s_u = torch.ones((), device=flat.device, requires_grad=True)
        b_u = (self.beta.detach().float() / scale).clone().requires_grad_(True)
        opt = torch.optim.Adam([s_u, b_u], lr=1e-2)
        with torch.enable_grad():
            for _ in range(self.mse_steps):
                opt.zero_grad()
                xq = lsqplus_quantize(flat, (s_u * scale).clamp_min(S_MIN), b_u * scale, n, p)
                ((xq - flat) ** 2).mean().backward()
                opt.step()
        self.s.copy_((s_u.detach() * scale).clamp_min(S_MIN))
        self.beta.copy_(b_u.detach() * scale)

    def forward(self, x: Tensor) -> Tensor:
        p = 2**self.bits - 1
        g = lsq_grad_scale(features_per_sample(x), p)
        s = grad_scale(self.s, g).clamp_min(S_MIN)
        beta = grad_scale(self.beta, g)
        return lsqplus_quantize(x, s, beta, 0, p)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, init={self.init}"
