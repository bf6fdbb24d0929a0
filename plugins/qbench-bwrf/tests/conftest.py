"""Small quantized models for the BWRF tests, built with qbench's own surgery.

The wrapper must work around any quantizer, so most tests use a minimal uniform quantizer
defined here (learned step, STE), independent of any other plugin; one test uses lsq-w/lsq-a.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from qbench.api import (
    ActivationQuantizer,
    LayerBits,
    WeightQuantizer,
    find_layers,
    int_range,
    quantize_model,
    round_ste,
)
from qbench.testing import create_model

# 2 cores shared with other jobs: one intra-op thread avoids OpenMP oversubscription (20x slower)
torch.set_num_threads(1)

MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet20": ("resnet20", {}),
    "resnet18": ("resnet18", dict(zero_init_last=False)),  # timm zero-inits the last BN: no branch gradient
    "vit": ("vit_tiny_patch16_224", dict(img_size=8, patch_size=2, depth=2, embed_dim=32, num_heads=2)),
}


class UniformW(WeightQuantizer):
    """Signed uniform weights with a learned per-tensor step (STE)."""

    def __init__(self, bits: int, layer: nn.Module) -> None:
        super().__init__(bits)
        self.step = nn.Parameter(torch.tensor(0.1))

    def init_from(self, w: Tensor) -> None:
        self.step.fill_(2 * w.abs().mean().item() / math.sqrt(int_range(self.bits, True)[1]))

    def forward(self, w: Tensor) -> Tensor:
        q_n, q_p = int_range(self.bits, True)
        return round_ste(torch.clamp(w / self.step, -q_n, q_p)) * self.step


class UniformA(ActivationQuantizer):
    """Uniform activations with a learned step (STE); signedness decided by the base class."""

    def __init__(self, bits: int, layer: nn.Module) -> None:
        super().__init__(bits)
        self.step = nn.Parameter(torch.tensor(0.1))

    def init_from(self, x: Tensor) -> None:
        self.step.fill_(2 * x.abs().mean().item() / math.sqrt(int_range(self.bits, self.signed)[1]))

    def forward(self, x: Tensor) -> Tensor:
        q_n, q_p = int_range(self.bits, self.signed)
        return round_ste(torch.clamp(x / self.step, -q_n, q_p)) * self.step


def build(key: str, make_wq: Any = UniformW, make_aq: Any = UniformA, bits: int = 4,
          seed: int = 0) -> tuple[nn.Module, nn.Module, Tensor, Tensor]:
    """(qmodel in train mode, frozen FP copy in eval mode, x, y) on 8x8 one-channel images."""
    torch.manual_seed(seed)
    name, kwargs = MODELS[key]
    fp = create_model(name, 10, 1, **kwargs)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    fp.train()
    with torch.no_grad():  # give BN running statistics sensible values
        for _ in range(3):
            fp(torch.randn(8, 1, 8, 8))
    fp.eval()
    plan = {layer.name: LayerBits(bits, bits) for layer in find_layers(fp, x) if layer.role == "body"}
    qmodel = quantize_model(copy.deepcopy(fp), plan, make_wq, make_aq)
    qmodel.train()
    with torch.no_grad():
        qmodel(x)  # data-dependent quantizer init, as the host does with a calibration batch
    fp_frozen = copy.deepcopy(fp).eval().requires_grad_(False)
    return qmodel, fp_frozen, x, y


@pytest.fixture
def build_models() -> Any:
    """The :func:`build` helper (test modules cannot import conftest under --import-mode=importlib)."""
    return build


@pytest.fixture
def resnet20() -> tuple[nn.Module, nn.Module, Tensor, Tensor]:
    return build("resnet20")
