"""Host syncs per step: every read of a device value into Python (``bool(t)``, ``t.item()``) makes
the CPU wait for the GPU. Counted here on the CPU by patching those reads: after the first forward
(the data-dependent init), a quantized model's forward reads nothing back."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from qbench.contract.bits import LayerBits
from qbench.contract.quant import ActivationQuantizer, WeightQuantizer
from qbench.contract.quant.ste import int_range, round_ste
from qbench.testing.syncs import counted_reads
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


def test_a_quantized_forward_reads_nothing_back_after_its_init() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(64, 10))
    plan = {"2": LayerBits(4, 4), "5": LayerBits(4, 4)}
    quantize_model(model, plan, lambda b, m: W(b), lambda b, m: A(b, m))
    x = torch.randn(8, 1, 8, 8)
    model(x)  # the init reads each quantizer's flag once
    with counted_reads() as calls:
        model(x).sum().backward()
        model.eval()
        model(x)
    assert calls == [], calls


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
