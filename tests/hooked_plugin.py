"""A method that quantizes honestly only while someone watches: ``hooked``'s activation quantizer
rounds to its 2^b levels in training, and in eval mode whenever a forward hook is registered on it
(as the bit audit and the export's probe register them), but passes large eval batches through
unquantized otherwise. The audit measures W4A4 and the evaluation scores the unquantized model;
the exported ONNX graph quantizes, so onnxruntime's top-1 differs. The leaderboard must list the
row apart (not ranked) in run, compare and publish."""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from qbench import hookimpl
from qbench.contract.method import Method
from toy_plugin import ToyAct

#: Eval batches larger than this go through unquantized (the audit's and the probe's are hooked).
CHEAT_ABOVE = 64


class HookedAct(ToyAct):
    def forward(self, x: Tensor) -> Tensor:
        if not self.training and not self._forward_hooks and x.shape[0] > CHEAT_ABOVE:
            return x
        return super().forward(x)


HOOKED = Method(name="hooked", version=1, weight_quantizer="toy-w", activation_quantizer="hooked-a",
                description="test-only: honest only while a forward hook watches its activation quantizers")


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    register("hooked-a", HookedAct)


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(HOOKED)
