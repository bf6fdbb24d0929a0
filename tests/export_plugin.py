"""A method plugin written against the documented export() schema (docs/plugin-contract.md), one
quantizer per kind of export, for the deploy tests:

* ``xu``: per-tensor symmetric uniform weights, export() = codes + scale; unsigned uniform
  activations (scale from the calibration max, zero point 0): both sides integer.
* ``xpc``: per-channel asymmetric uniform weights, export() = codes + scale + zero_point (one per
  output channel); signed uniform activations (zero point 2^(b-1)).
* ``xlut``: power-of-two weight levels, export() = codes + lut; activations on a non-uniform
  (square-law) grid, which deploys as the quantizer's own traced ops.
* ``xwonly``: weight-only, per-channel quantile levels, the default export() (the hard weight
  only): the host infers each channel's LUT.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from qbench.api import ActivationQuantizer, Method, WeightQuantizer, hookimpl, int_range, round_ste


class UniformW(WeightQuantizer):
    def __init__(self, bits: int, layer: nn.Module | None = None) -> None:
        super().__init__(bits)
        self.register_buffer("s", torch.tensor(1.0))

    def init_from(self, w: Tensor) -> None:
        self.s.fill_(float(w.abs().max()) / (2 ** (self.bits - 1) - 1 or 1))

    def forward(self, w: Tensor) -> Tensor:
        qn, qp = int_range(self.bits, signed=True)
        return round_ste(torch.clamp(w / self.s, -qn, qp)) * self.s

    def export(self, w: Tensor) -> dict[str, Tensor]:
        qn, qp = int_range(self.bits, signed=True)
        return {"codes": torch.clamp(torch.round(w / self.s), -qn, qp).to(torch.int8), "scale": self.s.clone()}


class ChannelW(WeightQuantizer):
    per_channel = True

    def __init__(self, bits: int, layer: nn.Module | None = None) -> None:
        super().__init__(bits)
        n = layer.weight.shape[0] if layer is not None else 1
        self.register_buffer("s", torch.ones(n))
        self.register_buffer("z", torch.zeros(n))

    def _view(self, t: Tensor, w: Tensor) -> Tensor:
        return t.reshape(-1, *([1] * (w.dim() - 1)))

    def init_from(self, w: Tensor) -> None:
        flat = w.reshape(w.shape[0], -1)
        lo, hi = flat.min(1).values, flat.max(1).values
        self.s.copy_((hi - lo).clamp_min(1e-8) / (2 ** self.bits - 1))
        self.z.copy_(torch.round(-lo / self.s))

    def codes(self, w: Tensor) -> Tensor:
        return torch.clamp(round_ste(w / self._view(self.s, w)) + self._view(self.z, w), 0, 2 ** self.bits - 1)

    def forward(self, w: Tensor) -> Tensor:
        return (self.codes(w) - self._view(self.z, w)) * self._view(self.s, w)

    def export(self, w: Tensor) -> dict[str, Tensor]:
        return {"codes": self.codes(w).detach().to(torch.uint8), "scale": self.s.clone(),
                "zero_point": self.z.to(torch.int32)}


class Pow2W(WeightQuantizer):
    """Levels 0 and +-alpha * 2^-k, k = 0 .. 2^(b-1) - 2."""

    def __init__(self, bits: int, layer: nn.Module | None = None) -> None:
        super().__init__(bits)
        self.register_buffer("alpha", torch.tensor(1.0))

    def init_from(self, w: Tensor) -> None:
        self.alpha.fill_(float(w.abs().max()))

    def levels(self) -> Tensor:
        mags = self.alpha * 2.0 ** -torch.arange(2 ** (self.bits - 1) - 1, dtype=torch.float32)
        return torch.cat([-mags, torch.zeros(1), mags.flip(0)]).sort().values

    def export(self, w: Tensor) -> dict[str, Tensor]:
        lut = self.levels()
        codes = (w.detach().reshape(-1, 1) - lut).abs().argmin(1).reshape(w.shape)
        return {"codes": codes.to(torch.uint8), "lut": lut}

    def forward(self, w: Tensor) -> Tensor:
        ex = self.export(w)
        hard = ex["lut"][ex["codes"].long()]
        return w + (hard - w).detach() if self.training else hard


class QuantileW(WeightQuantizer):
    """Per output channel, 2^b levels at the channel's quantiles; the default export()."""

    per_channel = True

    def __init__(self, bits: int, layer: nn.Module | None = None) -> None:
        super().__init__(bits)

    def forward(self, w: Tensor) -> Tensor:
        flat = w.detach().reshape(w.shape[0], -1)
        q = torch.linspace(0, 1, 2 ** self.bits)
        levels = torch.quantile(flat, q, dim=1).t()  # [C, L]
        idx = (flat[:, :, None] - levels[:, None, :]).abs().argmin(2)
        hard = torch.gather(levels, 1, idx).reshape(w.shape)
        return w + (hard - w).detach() if self.training else hard  # w + (hard - w) is not exactly hard


class UniformA(ActivationQuantizer):
    """Uniform on [0, max] (unsigned) or [-max, max) (signed); zero point 0 or 2^(b-1)."""

    def __init__(self, bits: int, layer: nn.Module | None = None, signed: bool | None = None) -> None:
        super().__init__(bits, signed)
        self.register_buffer("s", torch.tensor(1.0))

    def init_from(self, x: Tensor) -> None:
        qn, qp = int_range(self.bits, self.signed)
        self.s.fill_(float(x.abs().max()) / max(qp, 1))

    def forward(self, x: Tensor) -> Tensor:
        qn, qp = int_range(self.bits, self.signed)
        return round_ste(torch.clamp(x / self.s, -qn, qp)) * self.s


class SquareA(ActivationQuantizer):
    """Non-uniform: levels (k / n)^2 x max on [0, max], by rounding sqrt(x / max)."""

    def __init__(self, bits: int, layer: nn.Module | None = None) -> None:
        super().__init__(bits, signed=False)
        self.register_buffer("m", torch.tensor(1.0))

    def init_from(self, x: Tensor) -> None:
        self.m.fill_(float(x.clamp_min(0).max()))

    def forward(self, x: Tensor) -> Tensor:
        n = 2 ** self.bits - 1
        r = round_ste(torch.sqrt(torch.clamp(x / self.m, 0, 1) + 1e-12) * n) / n
        return r * r * self.m


METHODS = [
    Method(name="xu", version=1, weight_quantizer="xu-w", activation_quantizer="xu-a"),
    Method(name="xpc", version=1, weight_quantizer="xpc-w", activation_quantizer="xu-a",
           params={"activation": {"signed": True}}),
    Method(name="xlut", version=1, weight_quantizer="xlut-w", activation_quantizer="xsq-a"),
    Method(name="xwonly", version=1, weight_quantizer="xwonly-w"),
]


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    register("xu-w", UniformW)
    register("xpc-w", ChannelW)
    register("xlut-w", Pow2W)
    register("xwonly-w", QuantileW)
    register("xu-a", UniformA)
    register("xsq-a", SquareA)


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    for m in METHODS:
        register(m)
