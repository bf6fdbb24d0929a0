"""APoT quantizers: at most 2^b hard values on the documented grids, the RCF gradient of alpha
(clipped values included), weight normalisation, signed inputs, and registration."""
from __future__ import annotations

import math

import pytest
import torch
from qbench_apot.levels import apot_levels
from qbench_apot.quantizers import ApotActQuantizer, ApotWeightQuantizer
from torch import nn

from qbench.testing import get_catalog


def _conv(seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    conv = nn.Conv2d(8, 16, 3)
    with torch.no_grad():
        conv.weight.normal_(0.01, 0.05)
    return conv


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_weight_hard_values_on_signed_grid(bits: int) -> None:
    conv = _conv()
    q = ApotWeightQuantizer(bits, conv)
    q.initialize(conv.weight)
    assert math.isclose(q.alpha.item(), 3.0)  # the authors' init, in std units
    hard = q.hard(conv.weight)
    values = hard.unique()
    assert values.numel() <= 2**bits
    w = conv.weight.detach()
    scale = q.alpha.detach() * w.std()  # rescale="std": std * alpha * (+-level)
    grid = apot_levels(bits - 1, signed=True) * scale
    assert values.numel() == grid.numel()  # a bell-shaped weight reaches every level
    assert torch.allclose(values, grid, atol=1e-6)
    exp = q.export(conv.weight)
    assert torch.allclose(exp["levels"][exp["codes"].long()] * exp["scale"], hard, atol=1e-6)


def test_weight_normalisation() -> None:
    """(w - mean) / std before quantizing: an affine change of w only rescales the result."""
    conv = _conv(1)
    w = conv.weight.detach()
    raw = ApotWeightQuantizer(3, conv, rescale="none")
    raw.initialize(w)
    shifted = 4.0 * w + 0.3
    assert torch.allclose(raw.hard(shifted), raw.hard(w), atol=1e-6)
    std = ApotWeightQuantizer(3, conv)
    std.initialize(w)
    assert torch.allclose(std.hard(shifted), 4.0 * std.hard(w), atol=1e-5)
    # Without normalisation (alpha = 3 on raw weights of std 0.05) nearly everything would round
    # to 0; normalised, the small weights keep non-zero levels.
    assert (raw.hard(w) != 0).float().mean() > 0.3


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_activation_at_most_2_pow_b_per_sample(bits: int) -> None:
    torch.manual_seed(2)
    x = torch.relu(torch.randn(4, 8, 6, 6)) * 3
    q = ApotActQuantizer(bits)
    q.initialize(x)
    assert not q.signed
    out = q(x)
    for sample in out:
        assert sample.unique().numel() <= 2**bits
    grid = apot_levels(bits) * q.alpha.detach()
    assert torch.isin(out.unique(), grid).all()


def test_signed_activation_input() -> None:
    torch.manual_seed(3)
    x = torch.randn(4, 10, 16)  # LayerNorm-like, symmetric
    q = ApotActQuantizer(3)
    q.initialize(x)
    assert q.signed
    out = q(x)
    assert (out < 0).any()
    assert out.unique().numel() <= 2**3
    state = q.state_dict()
    fresh = ApotActQuantizer(3)
    fresh.load_state_dict(state)
    assert fresh.signed and torch.equal(fresh(x), out)


def test_mse_alpha_init_beats_max_at_low_bits() -> None:
    torch.manual_seed(4)
    x = torch.relu(torch.randn(8, 512)) ** 2  # long-tailed
    mse, mx = ApotActQuantizer(2), ApotActQuantizer(2, alpha_init="max")
    mse.initialize(x)
    mx.initialize(x)
    assert mse.alpha.item() < mx.alpha.item()
    with torch.no_grad():
        err = [float(((q(x) - x) ** 2).mean()) for q in (mse, mx)]
    assert err[0] < err[1]


def test_alpha_gradient_from_clipped_activations() -> None:
    q = ApotActQuantizer(2, alpha_init=1.0)
    q.initialize(torch.ones(1))
    x = torch.tensor([1.5, 3.0, 2.2], requires_grad=True)  # all above alpha = 1: all clipped
    up = torch.tensor([0.3, -1.0, 2.0])
    (q(x) * up).sum().backward()
    assert math.isclose(q.alpha.grad.item(), float(up.sum()), rel_tol=1e-6)  # d/d alpha = 1
    assert torch.equal(x.grad, torch.zeros(3))  # clipped inputs get no gradient


def test_alpha_gradient_matches_rcf_formula() -> None:
    """d x^/d alpha = sign(x) when |x| > alpha, Proj(x/alpha) - x/alpha inside (signed weights)."""
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[-1.7, -0.35, 0.05], [0.3, 0.9, 2.4]]))
    q = ApotWeightQuantizer(3, layer, rescale="none", alpha_init=1.0, detach_stats=True)
    q.initialize(layer.weight)
    w = layer.weight
    up = torch.tensor([[1.0, -2.0, 0.5], [1.5, -1.0, 0.25]])
    (q(w) * up).sum().backward()
    std = w.detach().std()
    v = ((w.detach() - w.detach().mean()) / std).flatten().tolist()  # about [-1.45 .. 1.57]
    assert sum(abs(t) > 1 for t in v) == 2  # two clipped, four inside
    levels = apot_levels(2, signed=True)  # +-{0, 1/4, 1/2, 1}
    expected = 0.0
    for t, u in zip(v, up.flatten().tolist()):
        if abs(t) > 1.0:
            expected += u * math.copysign(1.0, t)
        else:
            expected += u * (float(levels[(levels - t).abs().argmin()]) - t)
    assert math.isclose(q.alpha.grad.item(), expected, rel_tol=1e-5)
    # Clipped weights get no gradient by default; inside, the STE passes d(w_n)/dw = 1/std.
    inside = torch.tensor([abs(t) <= 1.0 for t in v], dtype=torch.float32).reshape(2, 3)
    assert torch.allclose(w.grad, up * inside / std, atol=1e-6)


def test_unclipped_weight_gradient_option() -> None:
    layer = nn.Linear(4, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[-3.0, -0.5, 0.5, 3.0]]))
    q = ApotWeightQuantizer(3, layer, rescale="none", alpha_init=1.0, clip_weight_grad=False,
                            detach_stats=True)
    q.initialize(layer.weight)
    q(layer.weight).sum().backward()
    std = layer.weight.detach().std()
    assert torch.allclose(layer.weight.grad, torch.full((1, 4), 1.0) / std)


def test_weight_bits_below_two_rejected() -> None:
    q = ApotWeightQuantizer(1, nn.Linear(2, 2))
    with pytest.raises(ValueError):
        q.initialize(torch.randn(2, 2))


def test_registered() -> None:
    cat = get_catalog()
    method = cat.methods.get("apot")
    cat.check_method(method)
    assert (method.weight_quantizer, method.activation_quantizer) == ("apot-w", "apot-a")
