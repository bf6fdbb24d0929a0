"""POST weight quantizer: the documented level sets, nearest-level projection, per-channel level
count, STE/LSQ gradients, and the export/decode round trip."""
from __future__ import annotations

import math

import torch
from qbench_asq.post import POSTWeightQuantizer, post_decode, post_levels
from torch import nn

from qbench.api import lsq_grad_scale

R = math.sqrt(2.0)
#: The sets written in the README and the post.py docstring (drop="negative").
DOCUMENTED = {
    2: [-1, 0, R ** -1, 1],
    3: [-1, -R ** -1, -R ** -2, 0, R ** -3, R ** -2, R ** -1, 1],
    4: [-(R ** -k) for k in range(7)] + [0] + [R ** -k for k in range(8)],
}


def test_level_sets_for_2_3_4_bits() -> None:
    for bits, expected in DOCUMENTED.items():
        lut = post_levels(bits, dtype=torch.float64)
        assert torch.allclose(lut, torch.tensor(sorted(expected), dtype=torch.float64), rtol=0, atol=1e-15)
        assert lut.numel() == 2 ** bits and lut.unique().numel() == 2 ** bits
        for side in (lut[lut > 0], -lut[lut < 0]):
            mags = side.sort(descending=True).values
            assert mags[0] == 1.0
            assert torch.allclose(mags[:-1] / mags[1:], torch.full((mags.numel() - 1,), R, dtype=torch.float64))
        pair = post_levels(bits, drop="pair", dtype=torch.float64)
        assert pair.numel() == 2 ** bits - 1 and torch.allclose(pair, -pair.flip(0))


def _conv(seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    conv = nn.Conv2d(6, 5, 3)
    with torch.no_grad():
        conv.weight[1].mul_(10)  # channels with very different ranges
        conv.weight[2].mul_(0.01)
    return conv


def test_alpha_init_is_per_channel_quantile() -> None:
    conv = _conv()
    wq = POSTWeightQuantizer(4, conv)
    wq.initialize(conv.weight)
    expected = torch.quantile(conv.weight.detach().abs().reshape(5, -1), 0.99, dim=1)
    assert torch.allclose(wq.alpha, expected)


def test_hard_weight_is_nearest_level_and_at_most_2b_values_per_channel() -> None:
    conv = _conv()
    for bits in (2, 3, 4):
        wq = POSTWeightQuantizer(bits, conv)
        wq.initialize(conv.weight)
        hard = wq.hard(conv.weight)
        lut = wq.levels()
        u = (conv.weight.detach() / wq.alpha.reshape(-1, 1, 1, 1)).clamp(-1, 1)
        nearest = lut[(u.unsqueeze(-1) - lut).abs().argmin(-1)]  # brute force
        assert torch.allclose(hard, nearest * wq.alpha.reshape(-1, 1, 1, 1))
        for c in range(hard.shape[0]):
            assert hard[c].unique().numel() <= 2 ** bits
        wq.train()
        assert torch.equal(wq(conv.weight).detach(), hard)  # training forward = deployed weight


def test_bits_change_rebuilds_lut() -> None:
    conv = _conv()
    wq = POSTWeightQuantizer(4, conv)
    wq.initialize(conv.weight)
    wq.bits = 2
    hard = wq.hard(conv.weight)
    assert wq.levels().numel() == 4
    assert all(hard[c].unique().numel() <= 4 for c in range(hard.shape[0]))


def test_export_decode_round_trip_is_exact() -> None:
    conv = _conv()
    for bits in (2, 3, 4):
        for drop in ("negative", "pair"):
            wq = POSTWeightQuantizer(bits, conv, drop=drop)
            wq.initialize(conv.weight)
            with torch.no_grad():
                wq.alpha.mul_(torch.linspace(0.7, 1.3, 5))  # not the init values
            exported = wq.export(conv.weight)
            assert exported["codes"].dtype == torch.uint8 and exported["codes"].shape == conv.weight.shape
            assert int(exported["codes"].max()) < 2 ** bits and exported["lut"].numel() <= 2 ** bits
            assert torch.equal(post_decode(exported), wq.hard(conv.weight))


def test_gradients_ste_to_w_and_lsq_to_alpha() -> None:
    lin = nn.Linear(8, 3).double()
    wq = POSTWeightQuantizer(3, lin).double()
    with torch.no_grad():
        wq.alpha.copy_(torch.tensor([0.2, 0.3, 0.25], dtype=torch.float64))
    w = lin.weight.detach().clone()
    w[0, 0], w[1, 1] = 0.5, -0.9  # clipped entries on both sides
    w.requires_grad_(True)
    c = torch.randn(w.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = wq(w)
    (c * out).sum().backward()
    a = wq.alpha.detach().reshape(-1, 1)
    u = w.detach() / a
    inside = u.abs() <= 1
    q = out.detach() / a
    assert torch.allclose(w.grad, c * inside, rtol=1e-12, atol=0)
    g = lsq_grad_scale(8, 3)
    expected = g * (c * torch.where(inside, q - u, torch.sign(u))).sum(1)
    assert torch.allclose(wq.alpha.grad, expected)
