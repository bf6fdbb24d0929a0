"""A weight quantizer that kills its own process (SIGKILL) on first use, as a segfaulting extension
or the kernel's OOM killer would: the executors' tests (pool, Ray, Slurm) register it to check that
a dead job becomes a ``crashed`` row while the run goes on."""
from __future__ import annotations

import os
import signal

from torch import Tensor, nn

from qbench.contract.quant import WeightQuantizer


class KillWeight(WeightQuantizer):
    def __init__(self, bits: int, layer: nn.Module | None = None) -> None:
        super().__init__(bits)

    def forward(self, w: Tensor) -> Tensor:
        os.kill(os.getpid(), signal.SIGKILL)
        return w  # pragma: no cover
