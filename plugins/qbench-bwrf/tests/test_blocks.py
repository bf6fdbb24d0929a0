"""Block splitting: the ordered block (or stage) names of each supported family, and clear errors."""
from __future__ import annotations

import pytest
import torch
from qbench_bwrf import BWRFWrapper, find_blocks
from torch import nn

from qbench.api import QbenchError
from qbench.testing import create_model


def test_resnet20_blocks_and_stages() -> None:
    m = create_model("resnet20", 10, 1)
    assert find_blocks(m) == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    assert find_blocks(m, "stage") == ["layer1", "layer2", "layer3"]


def test_timm_resnet18_blocks_and_stages() -> None:
    m = create_model("resnet18", 10, 1)
    assert find_blocks(m) == [f"layer{s}.{b}" for s in (1, 2, 3, 4) for b in range(2)]
    assert find_blocks(m, "stage") == ["layer1", "layer2", "layer3", "layer4"]


def test_convnext_stage_blocks() -> None:
    m = create_model("convnext_atto", 10, 1, depths=(1, 2, 1, 1), dims=(8, 8, 16, 16))
    assert find_blocks(m) == ["stages.0.blocks.0", "stages.1.blocks.0", "stages.1.blocks.1",
                              "stages.2.blocks.0", "stages.3.blocks.0"]
    assert find_blocks(m, "stage") == [f"stages.{i}" for i in range(4)]


def test_vit_blocks_and_no_stages() -> None:
    m = create_model("vit_tiny_patch16_224", 10, 1, img_size=8, patch_size=2, depth=3, embed_dim=32, num_heads=2)
    assert find_blocks(m) == ["blocks.0", "blocks.1", "blocks.2"]
    with pytest.raises(QbenchError, match="no stages"):
        find_blocks(m, "stage")


class TinyNet(nn.Module):
    """A model with no block list: BWRF cannot split it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


def test_model_without_blocks_is_a_clear_error() -> None:
    fp, q = TinyNet().eval(), TinyNet()
    with pytest.raises(QbenchError) as info:
        BWRFWrapper().setup(q, fp)
    msg = str(info.value)
    assert "TinyNet" in msg and "Supported families" in msg
    assert "layer1" in msg and "stages[i].blocks[j]" in msg and "ViT" in msg


def test_single_block_model_is_an_error() -> None:
    m = create_model("vit_tiny_patch16_224", 10, 1, img_size=8, patch_size=2, depth=1, embed_dim=32, num_heads=2)
    with pytest.raises(QbenchError, match="at least two"):
        find_blocks(m)


def test_bad_parameters_are_errors() -> None:
    with pytest.raises(QbenchError, match="reading"):
        BWRFWrapper(reading="all")
    with pytest.raises(QbenchError, match="granularity"):
        find_blocks(create_model("resnet20", 10, 1), "layer")
    with pytest.raises(QbenchError, match="num_mp"):
        BWRFWrapper(num_mp=0)
    with pytest.raises(QbenchError, match="weights"):
        BWRFWrapper(w_kd_mp_lp=-1.0)
