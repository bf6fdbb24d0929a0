"""Host syncs per step: every read of a device value into Python (``bool(t)``, ``t.item()``) makes
the CPU wait for the GPU. Counted here on the CPU by patching those reads: after the first forward
(the data-dependent init), a quantized model's forward reads nothing back, and the training loop
reads its losses once per :data:`~qbench.train.loop.FINITE_CHECK_EVERY` steps and once an epoch
(it read three values every step: the finite check, the epoch sum and the step hook's loss)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from qbench.contract.allocation import BitAllocator, StepContext
from qbench.contract.bits import LayerBits
from qbench.contract.quant import ActivationQuantizer, WeightQuantizer
from qbench.contract.quant.ste import int_range, round_ste
from qbench.testing import tiny_digits
from qbench.testing.syncs import counted_reads
from qbench.train.loop import FINITE_CHECK_EVERY, train
from qbench.train.qat import QatParts
from qbench.train.recipe import TrainRecipe
from qbench.train.surgery import quantize_model


class W(WeightQuantizer):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        _, qp = int_range(self.bits, signed=True)
        s = w.detach().abs().amax().clamp_min(1e-8) / qp
        return round_ste(torch.clamp(w / s, -qp, qp)) * s


class A(ActivationQuantizer):
    def __init__(self, bits: int, layer: nn.Module | None = None) -> None:
        super().__init__(bits, signed=False)
        self.register_buffer("hi", torch.tensor(1.0))

    def init_from(self, x: torch.Tensor) -> None:
        self.hi.copy_(x.abs().amax())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = 2 ** self.bits - 1
        s = self.hi.clamp_min(1e-8) / n
        return round_ste(torch.clamp(x / s, 0, n)) * s


def quantized_model() -> nn.Module:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(64, 10))
    plan = {"2": LayerBits(4, 4), "5": LayerBits(4, 4)}
    quantize_model(model, plan, lambda b, m: W(b), lambda b, m: A(b, m))
    model(torch.randn(8, 1, 8, 8))  # the init reads each quantizer's flag once
    return model


def test_a_quantized_forward_reads_nothing_back_after_its_init() -> None:
    model = quantized_model()
    x = torch.randn(8, 1, 8, 8)
    with counted_reads() as calls:
        model(x).sum().backward()
        model.eval()
        model(x)
    assert calls == [], calls


class Learning(BitAllocator):
    """An allocator with a step hook: the loop's loss is read for it (StepContext.loss is a float)."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def after_step(self, ctx: StepContext) -> None:
        self.losses.append(ctx.loss)


def loop_reads(steps_per_epoch: int, epochs: int, allocator: BitAllocator) -> int:
    """Host reads of ``train`` on a model whose forward reads nothing, with QAT's step hook."""
    model = quantized_model()
    data = tiny_digits(n_train=8 * steps_per_epoch)
    parts = QatParts(model, [], allocator, None, None, [])  # type: ignore[arg-type]  (the hook reads neither)
    with counted_reads() as calls:
        train(model, lambda x, y: nn.functional.cross_entropy(model(x), y), data,
              TrainRecipe(epochs=epochs, batch_size=8, lr=0.01), seed=0, after_step=parts.after_step)
    return len(calls)


@pytest.mark.parametrize("steps, epochs", [(3, 2), (FINITE_CHECK_EVERY + 5, 1)])
def test_the_loop_reads_its_losses_once_per_window_and_epoch(steps: int, epochs: int) -> None:
    """Per epoch: one finiteness read per FINITE_CHECK_EVERY steps and one at the epoch's end,
    and one read of the summed loss; nothing per step. (Before: 3 reads every step.)"""
    windows = -(-steps // FINITE_CHECK_EVERY)  # ceil
    assert loop_reads(steps, epochs, BitAllocator()) == epochs * (windows + 1)


def test_only_a_learning_allocator_gets_the_loss_read() -> None:
    allocator = Learning()
    assert loop_reads(3, 1, allocator) == 1 + 1 + 3  # the window, the epoch's mean, and one per step
    assert len(allocator.losses) == 3 and all(isinstance(v, float) for v in allocator.losses)


def test_a_loaded_state_is_read_afresh() -> None:
    """The flag held in Python must not survive a state dict that says otherwise."""
    q = W(4)
    q.initialize(torch.randn(10))
    assert q.is_initialized
    state = {k: (torch.tensor(False) if k == "initialized" else v) for k, v in q.state_dict().items()}
    q.load_state_dict(state)
    assert not q.is_initialized


def test_the_counter_counts() -> None:
    with counted_reads() as calls:
        bool(torch.tensor(True)), torch.tensor(1.0).item()
    assert calls == ["__bool__", "item"]


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
