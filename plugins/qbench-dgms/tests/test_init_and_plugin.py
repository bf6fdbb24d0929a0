"""k-means initialisation (facts and reproducibility), bit changes, export, and registration."""
from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
import torch
from qbench_dgms import DGMSWeightQuantizer, kmeans_1d, kmeans_pp_seeds
from torch import nn

from qbench.api import QuantConv2d
from qbench.testing import get_catalog


def _clustered(seed: int = 0) -> torch.Tensor:
    """1000 weights in four well-separated clusters of different sizes; one near (not at) 0."""
    g = torch.Generator().manual_seed(seed)
    centres, sizes = [-1.0, 0.05, 1.0, 2.0], [100, 500, 300, 100]
    parts = [c + 0.02 * torch.randn(n, generator=g) for c, n in zip(centres, sizes)]
    return torch.cat(parts)[torch.randperm(1000, generator=g)]


def test_kmeans_init_sets_zero_component_fractions_and_stds() -> None:
    w = _clustered()
    torch.manual_seed(0)
    q = DGMSWeightQuantizer(2, None)
    q.initialize(w)
    table = q.means_table()
    assert table[0].item() == 0.0  # the 0.05 cluster became the zero component
    torch.testing.assert_close(table[1:], torch.tensor([-1.0, 1.0, 2.0]), atol=0.01, rtol=0)
    torch.testing.assert_close(q.mixing(), torch.tensor([0.5, 0.1, 0.3, 0.1]))
    # sigma = cluster std about the component mean (about 0 for the zero cluster, as in the
    # official code: sqrt(0.02^2 + 0.05^2)), with the n-1 denominator
    sig = q.sigmas()
    torch.testing.assert_close(sig[1:], torch.full((3,), 0.02), atol=0.004, rtol=0)
    assert abs(sig[0].item() - (0.02**2 + 0.05**2) ** 0.5) < 0.004
    fixed = DGMSWeightQuantizer(2, None, sigma_init=0.01)
    fixed.initialize(w)
    torch.testing.assert_close(fixed.sigmas(), torch.full((4,), 0.01))


def test_kmeans_matches_lloyd_fixed_point() -> None:
    """Each returned centre is the mean of the points assigned to it (a Lloyd fixed point)."""
    torch.manual_seed(3)
    x = torch.randn(5000, dtype=torch.float64)
    centres, labels = kmeans_1d(x, 8, iters=1000, tol=0.0)
    means = torch.stack([x[labels == k].mean() for k in range(8)])
    torch.testing.assert_close(centres, means, atol=1e-9, rtol=0)
    assert torch.equal(labels, (x[:, None] - centres[None]).abs().argmin(1))


def test_kmeans_pp_draws_by_squared_distance() -> None:
    """Given a first seed at 0, the second is 1, 2 or 4 with probability 1:4:16 (D^2)."""
    x = torch.tensor([0.0, 1.0, 2.0, 4.0], dtype=torch.float64)
    torch.manual_seed(0)
    seconds = [float(s[1]) for s in (kmeans_pp_seeds(x, 2) for _ in range(3000)) if s[0] == 0.0]
    freq = torch.tensor([seconds.count(v) for v in (1.0, 2.0, 4.0)], dtype=torch.float64) / len(seconds)
    torch.testing.assert_close(freq, torch.tensor([1, 4, 16], dtype=torch.float64) / 21, atol=0.05, rtol=0)


def test_kmeans_init_reproducible_under_seed() -> None:
    """Same seed: bit-identical mixture. Another seed: the k-means++ seeds differ (the only
    randomness), and on well-separated data Lloyd still lands on the same centres."""
    w = torch.randn(32, 16, 3, 3, generator=torch.Generator().manual_seed(5)) * 0.05

    def fitted(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        q = DGMSWeightQuantizer(3, None)
        q.initialize(w)
        return [q.means.detach().clone(), q.log_sigma.detach().clone(), q.pi.detach().clone()]

    for a, b in zip(fitted(0), fitted(0)):
        assert torch.equal(a, b)
    torch.manual_seed(0)
    s0 = kmeans_pp_seeds(w.flatten().double(), 8)
    torch.manual_seed(1)
    s1 = kmeans_pp_seeds(w.flatten().double(), 8)
    assert not torch.equal(s0, s1)
    x = _clustered().double()
    ends = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        ends.append(kmeans_1d(x, 4)[0])
    torch.testing.assert_close(ends[0], ends[1], atol=1e-9, rtol=0)


def test_export_codes_and_lut_reproduce_hard_weight() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3)
    q = DGMSWeightQuantizer(4, conv)
    q.initialize(conv.weight)
    out = q.export(conv.weight)
    assert out["codes"].dtype == torch.uint8 and out["codes"].shape == conv.weight.shape
    assert out["lut"].shape == (16,) and out["lut"][0].item() == 0.0
    assert torch.equal(out["lut"][out["codes"].long()], q.hard(conv.weight))


def test_bits_change_refits_in_place_up_to_max_bits() -> None:
    torch.manual_seed(0)
    w = torch.randn(16, 8, 3, 3) * 0.05
    q = DGMSWeightQuantizer(3, None, max_bits=3)
    q.initialize(w)
    shapes = [p.shape for p in q.parameters()]
    q.bits = 2
    q.train()(w)
    assert int(q.fitted_bits) == 2 and q.means_table().numel() == 4
    assert q.hard(w).unique().numel() <= 4
    assert [p.shape for p in q.parameters()] == shapes  # an optimiser's state stays valid
    q.bits = 4
    with pytest.raises(ValueError, match="max_bits"):
        q.hard(w)


def test_method_registered_and_quantized_layer_trains_soft_and_evaluates_hard() -> None:
    cat = get_catalog()
    m = cat.methods.get("dgms")
    assert (m.weight_quantizer, m.activation_quantizer, m.allocator, m.wrapper) == ("dgms-w", None, "fixed", "plain")
    assert m.weight_only and m.version == 1
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3)
    wq = cat.quantizers.get("dgms-w").factory(bits=2, layer=conv, **m.part_params("weight"))
    layer = QuantConv2d.from_float(conv, wq, None, "conv")
    x = torch.randn(2, 4, 6, 6)
    layer.train()
    y = layer(x)
    y.square().mean().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    layer.eval()
    hard = layer.hard_weight()
    assert hard.unique().numel() <= 4
    torch.testing.assert_close(layer(x), nn.functional.conv2d(x, hard, layer.bias))
    assert not torch.equal(wq.train()(layer.weight).detach(), hard)  # training uses the soft weight


def test_paperlr_variant_differs_from_dgms_only_in_the_mixture_gradient_scale() -> None:
    cat = get_catalog()
    base, variant = cat.methods.get("dgms"), cat.methods.get("dgms-paperlr")
    assert variant.weight_only and variant.weight_quantizer == base.weight_quantizer
    params, base_params = variant.part_params("weight"), base.part_params("weight")
    assert params.pop("param_grad_scale") == pytest.approx(2e-5 / 0.01)
    assert base_params.pop("param_grad_scale") == 1.0
    assert params == base_params
    # every shipped suite trains QAT at the lr the scale assumes
    for entry in cat.suites.entries():
        assert tomllib.loads(Path(entry.obj).read_text())["qat"]["lr"] == 0.01, entry.name
