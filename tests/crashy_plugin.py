"""Test-only methods whose quantizer kills its process or hangs, for the executors' tests."""
from __future__ import annotations

import time
from typing import Callable

from torch import Tensor, nn

from qbench import hookimpl
from qbench.contract.method import Method
from qbench.contract.quant import WeightQuantizer
from qbench.testing.crash import KillWeight


class HangWeight(WeightQuantizer):
    """Never returns, as a deadlocked op would (no Python-level deadline check can fire)."""

    def __init__(self, bits: int, layer: nn.Module | None = None) -> None:
        super().__init__(bits)

    def forward(self, w: Tensor) -> Tensor:
        time.sleep(3600)
        return w  # pragma: no cover


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    register("kill-w", KillWeight)
    register("hang-w", HangWeight)


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(Method(name="crash", version=1, weight_quantizer="kill-w"))
    register(Method(name="hang", version=1, weight_quantizer="hang-w"))
