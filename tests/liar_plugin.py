"""A method plugin that lies about its bits, for the budget tests: ``liar`` declares the suite's
bits (W2A2 at a 2-bit target) but rounds weights and activations to a grid of one bit more (3 bits:
7 weight levels, 8 activation levels). The audit measures the lie; the budget rule must flag the
row, ``qbench run`` warn about it, and compare/publish leave it unranked. ``dead`` collapses its
weights to one level, for the conformance suite's collapse check."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from qbench import hookimpl
from qbench.contract.method import Method
from qbench.contract.quant import ActivationQuantizer, WeightQuantizer
from qbench.contract.quant.ste import int_range, round_ste

EXTRA_BITS = 1


class LiarWeight(WeightQuantizer):
    """Declares ``bits``; quantizes to a symmetric (bits + 1)-bit grid, scale max|w| / Q_P."""

    def __init__(self, bits: int, layer: nn.Module | None = None) -> None:
        super().__init__(bits)

    def forward(self, w: Tensor) -> Tensor:
        qn, qp = int_range(self.bits + EXTRA_BITS, signed=True)
        s = w.detach().abs().max().clamp_min(1e-8) / max(qp, 1)
        return round_ste(torch.clamp(w / s, -qp, qp)) * s


class LiarAct(ActivationQuantizer):
    """Declares ``bits``; uniform on the calibration batch's [min, max] with 2^(bits + 1) levels."""

    def __init__(self, bits: int, layer: nn.Module | None = None, extra_bits: int = EXTRA_BITS) -> None:
        super().__init__(bits)
        self.extra_bits = extra_bits
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(1.0))

    def init_from(self, x: Tensor) -> None:
        self.lo.fill_(float(x.min()))
        self.hi.fill_(float(x.max()))

    def forward(self, x: Tensor) -> Tensor:
        n = 2 ** (self.bits + self.extra_bits) - 1
        s = (self.hi - self.lo).clamp_min(1e-8) / n
        return round_ste(torch.clamp((x - self.lo) / s, 0, n)) * s + self.lo


class DeadWeight(WeightQuantizer):
    """Declares ``bits``; every weight becomes its tensor's mean: one level (a collapsed quantizer)."""

    def __init__(self, bits: int, layer: nn.Module | None = None) -> None:
        super().__init__(bits)

    def forward(self, w: Tensor) -> Tensor:
        return w + (w.detach().mean() - w.detach())  # value: the mean; gradient: straight through


LIAR = Method(name="liar", version=1, weight_quantizer="liar-w", activation_quantizer="liar-a",
              description="test-only: declares b bits, uses b + 1")


DEAD = Method(name="dead", version=1, weight_quantizer="dead-w", activation_quantizer="liar-a",
              params={"activation": {"extra_bits": 0}}, description="test-only: weights collapse to one level")


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    register("liar-w", LiarWeight)
    register("liar-a", LiarAct)
    register("dead-w", DeadWeight)


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(LIAR)
    register(DEAD)
