"""DoReFa's defining properties: the 2^k-level weight grid on [-1, 1], the exact formula, the STE."""
from __future__ import annotations

import pytest
import torch
from qbench_dorefa import DoReFaActQuantizer, DoReFaWeightQuantizer, quantize_k
from torch import nn

from qbench.api import LayerBits, QuantConv2d, quantize_model
from qbench.testing import get_catalog


def _weights(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(16, 8, 3, 3, generator=g) * 0.1).requires_grad_(True)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_weights_lie_on_the_2k_grid_in_minus1_1(k: int) -> None:
    w = _weights(k)
    out = DoReFaWeightQuantizer(k, scale="none")(w).detach()
    n = 2**k - 1
    codes = (out + 1) * n / 2  # i in 0..n when out = 2i/n - 1
    assert torch.allclose(codes, codes.round(), atol=1e-5)
    assert out.min() >= -1 - 1e-6 and out.max() <= 1 + 1e-6
    assert len(torch.unique(out)) <= 2**k
    # max|tanh w| maps to 0 or 1: one extreme level is always hit exactly
    assert torch.isclose(out.abs().max(), torch.tensor(1.0))


@pytest.mark.parametrize("k", [2, 3, 4])
def test_weight_formula_is_the_papers(k: int) -> None:
    w = _weights(10 + k).detach()
    n = 2**k - 1
    t = torch.tanh(w)
    expected = 2 * torch.round(n * (t / (2 * t.abs().max()) + 0.5)) / n - 1
    q = DoReFaWeightQuantizer(k, scale="none")
    assert torch.equal(q(w), expected)
    assert torch.equal(q.hard(w), expected)


def test_weight_gradient_is_straight_through() -> None:
    """d w_q / d w equals the gradient of the unrounded map tanh(w) / max|tanh w| (rounding = identity)."""
    w = _weights(3)
    upstream = torch.randn_like(w)
    (DoReFaWeightQuantizer(3, scale="none")(w) * upstream).sum().backward()
    ref_w = w.detach().clone().requires_grad_(True)
    t = torch.tanh(ref_w)
    ((2 * (t / (2 * t.abs().max()) + 0.5) - 1) * upstream).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    assert torch.allclose(w.grad, ref_w.grad, atol=1e-6)


def test_one_bit_weights_are_sign_times_mean_abs() -> None:
    w = _weights(4).detach()
    for scale in ("none", "max_abs"):  # mean|w| is already the FP scale: no factor on top
        q = DoReFaWeightQuantizer(1, scale=scale)
        out = q(w)
        e = w.abs().mean()
        assert set(torch.unique(out).tolist()) == {float(-e), float(e)}
        assert torch.equal(out > 0, w >= 0)
        ex = q.export(w)
        assert torch.allclose(ex["lut"][ex["codes"]], out)


@pytest.mark.parametrize("k", [2, 3, 4])
def test_default_scale_restores_the_layers_fp_scale(k: int) -> None:
    """``scale="max_abs"`` (the default of the quantizer and of dorefa, pact, adaqat): the levels
    are the paper's grid times the layer's FP max|w|, so the quantized layer keeps about its FP
    norm; the paper's [-1, 1] grid puts a typical layer (std 0.1) at several times its FP norm."""
    w = _weights(20 + k).detach()
    q = DoReFaWeightQuantizer(k)
    assert q.scale_mode == "max_abs"
    out = q(w)
    paper = DoReFaWeightQuantizer(k, scale="none")(w)
    assert torch.allclose(out, paper * w.abs().max(), atol=1e-6)  # the same grid, rescaled
    ratio = float(out.norm() / w.norm())
    assert 0.6 < ratio < 1.6, ratio
    assert float(paper.norm() / w.norm()) > 2.5
    # fixed at initialisation (a buffer): later weights do not move it
    q(w * 3)
    assert float(q.scale) == pytest.approx(float(w.abs().max()))
    cat = get_catalog()
    assert cat.methods.get("dorefa").part_params("weight")["scale"] == "max_abs"


def test_bits_are_read_at_every_forward() -> None:
    w = _weights(5).detach()
    q = DoReFaWeightQuantizer(4)
    assert len(torch.unique(q(w))) > 4
    q.bits = 2
    assert len(torch.unique(q(w))) <= 4


def test_export_codes_and_lut_reproduce_the_hard_weight() -> None:
    w = _weights(6).detach()
    q = DoReFaWeightQuantizer(3)
    ex = q.export(w)
    assert ex["codes"].min() >= 0 and ex["codes"].max() <= 7
    assert torch.allclose(ex["lut"][ex["codes"]], ex["weight"], atol=1e-6)


def test_unsigned_activations_clip_to_0_1_and_quantize_k() -> None:
    x = torch.linspace(-1.5, 2.5, 401).reshape(1, -1)
    x = x[(x - 0).abs() > 1e-3]  # keep clear of the clip boundaries for the gradient check
    x = x[(x - 1).abs() > 1e-3].reshape(1, -1).requires_grad_(True)
    q = DoReFaActQuantizer(2, signed=False)
    y = q(x)
    levels = torch.tensor([0.0, 1.0, 2.0, 3.0]) / 3
    assert all(torch.isclose(v, levels).any() for v in torch.unique(y.detach()))
    assert torch.equal(y.detach(), torch.round(3 * x.detach().clamp(0, 1)) / 3)
    y.sum().backward()
    inside = ((x.detach() > 0) & (x.detach() < 1)).float()
    assert torch.equal(x.grad, inside)  # STE inside the clip range, zero outside


@pytest.mark.parametrize("k", [2, 3])
def test_signed_inputs_use_the_symmetric_grid(k: int) -> None:
    x = torch.randn(4, 64) * 2
    q = DoReFaActQuantizer(k)  # signedness from the first batch
    y = q(x)
    assert q.signed
    n = 2**k - 1
    codes = (y + 1) * n / 2
    assert torch.allclose(codes, codes.round(), atol=1e-5)
    for row in y:  # the audit counts per sample
        assert len(torch.unique(row)) <= 2**k
    assert y.min() == -1 and y.max() == 1
    # a positive batch first keeps the paper's unsigned [0, 1] variant
    q2 = DoReFaActQuantizer(k)
    q2(torch.rand(2, 8))
    assert not q2.signed
    assert q2(-torch.ones(1, 4)).eq(0).all()


def test_quantized_conv_deploys_at_most_2k_levels() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
    quantize_model(model, {"2": LayerBits(3, 3)}, lambda b, m: DoReFaWeightQuantizer(b, m),
                   lambda b, m: DoReFaActQuantizer(b, m))
    assert isinstance(model[2], QuantConv2d)
    model.eval()
    assert len(torch.unique(model[2].hard_weight())) <= 8
    out = model(torch.randn(2, 3, 8, 8))
    assert torch.isfinite(out).all()


def test_registered_method_composes_dorefa_parts() -> None:
    cat = get_catalog()
    m = cat.methods.get("dorefa")
    assert (m.weight_quantizer, m.activation_quantizer, m.allocator) == ("dorefa-w", "dorefa-a", "fixed")
    cat.check_method(m)
    assert cat.quantizers.get("dorefa-w").factory is DoReFaWeightQuantizer


def test_quantize_k_levels() -> None:
    x = torch.rand(1000)
    for k in (1, 2, 5):
        y = quantize_k(x, k)
        assert len(torch.unique(y)) <= 2**k
