"""A minimal method plugin for the host's own tests: symmetric uniform fake-quant with a fixed
max-abs scale. It keeps installed third-party plugins out of the host's tests."""
from __future__ import annotations

import sys
from typing import Callable

import torch
from torch import Tensor, nn

from qbench import hookimpl
from qbench.contract.method import Method
from qbench.contract.quant import ActivationQuantizer, WeightQuantizer
from qbench.contract.quant.ste import int_range, round_ste
from qbench.plugin.catalog import Catalog
from qbench.plugin.manager import get_plugin_manager


class ToyWeight(WeightQuantizer):
    """Symmetric uniform weights, scale = max|w| / Q_P, STE."""

    def __init__(self, bits: int, layer: nn.Module | None = None, extra_levels: int = 0) -> None:
        super().__init__(bits)
        self.extra_levels = extra_levels  # > 0 breaks the 2^b promise (for audit tests)

    def forward(self, w: Tensor) -> Tensor:
        qn, qp = int_range(self.bits, signed=True)
        qp += self.extra_levels
        s = w.detach().abs().max().clamp_min(1e-8) / max(qp, 1)
        return round_ste(torch.clamp(w / s, -qn, qp)) * s


class ToyAct(ActivationQuantizer):
    """Uniform activations on [min, max] of the calibration batch, fixed after init."""

    def __init__(self, bits: int, layer: nn.Module | None = None) -> None:
        super().__init__(bits)
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(1.0))

    def init_from(self, x: Tensor) -> None:
        self.lo.fill_(float(x.min()))
        self.hi.fill_(float(x.max()))

    def forward(self, x: Tensor) -> Tensor:
        n = 2 ** self.bits - 1
        s = (self.hi - self.lo).clamp_min(1e-8) / n
        return round_ste(torch.clamp((x - self.lo) / s, 0, n)) * s + self.lo


TOY = Method(name="toy", version=1, weight_quantizer="toy-w", activation_quantizer="toy-a",
             description="test-only uniform quantizer")
TOY_WONLY = Method(name="toy-wonly", version=1, weight_quantizer="toy-w")


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    register("toy-w", ToyWeight)
    register("toy-a", ToyAct)


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(TOY)
    register(TOY_WONLY)


def toy_catalog(*extra: object) -> Catalog:
    """A catalog of the default plugins, this toy method and ``extra`` plugin objects only:
    installed third-party plugins stay out of the host's tests."""
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(sys.modules[__name__], name="toy")
    for i, plugin in enumerate(extra):
        pm.register(plugin, name=f"test-extra-{i}")
    return Catalog(pm)
