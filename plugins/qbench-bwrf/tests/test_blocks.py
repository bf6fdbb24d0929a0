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


@pytest.mark.parametrize("name, kwargs, first, count", [
    ("regnetx_002", {}, ["s1.b1", "s2.b1", "s3.b1"], 13),  # RegNet: s1..s4 of b1..bM
    ("mobilevit_xxs", {}, ["stages.0.0", "stages.1.0", "stages.1.1"], 10),  # ByobNet: stages[i][j]
])
def test_regnet_and_byobnet_blocks_and_each_mixed_model_runs_the_intended_blocks(name: str, kwargs: dict,
                                                                                 first: list[str], count: int) -> None:
    """Found by the zoo suite: BWRF failed on regnetx_002 and mobilevit_xxs ('no recognised block list')."""
    import copy

    torch.manual_seed(0)
    fp = create_model(name, 10, 1, **kwargs).eval()
    q = copy.deepcopy(fp)
    names = find_blocks(q)
    assert names[:3] == first and len(names) == count
    assert find_blocks(q, "stage")[0] in (names[0].rsplit(".", 1)[0],)
    w = BWRFWrapper()
    w.setup(q, fp)
    ran: list[tuple[str, int]] = []
    hooks = [model.get_submodule(b).register_forward_hook(lambda *_, tag=tag, k=k: ran.append((tag, k)))
             for tag, model in (("F", fp), ("Q", q)) for k, b in enumerate(w.block_names)]
    x = torch.randn(2, 1, 32, 32)
    try:
        for cfg in w.configs[:3]:
            ran.clear()
            w.mp_logits(x, cfg)
            assert ran == [("Q" if lp else "F", k) for k, lp in enumerate(cfg)]
    finally:
        for h in hooks:
            h.remove()
