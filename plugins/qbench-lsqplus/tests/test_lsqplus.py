"""The defining properties of LSQ+: a learnable offset that pays off on shifted inputs, the
paper's inits, at most 2^b levels, and the STE gradients of s and beta."""
from __future__ import annotations

import math

import pytest
import torch
from qbench_lsqplus.quantizers import LsqPlusActQuantizer, LsqPlusWeightQuantizer
from torch import nn

from qbench.testing import get_catalog


def _train_reconstruction(q: LsqPlusActQuantizer, x: torch.Tensor, steps: int) -> float:
    """Fit the quantizer's own parameters to reconstruct x; returns the final MSE."""
    params = [p for p in q.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        ((q(x) - x) ** 2).mean().backward()
        opt.step()
    with torch.no_grad():
        return float(((q(x) - x) ** 2).mean())


def test_offset_is_learned_on_shifted_input() -> None:
    """On x ~ U(-0.5, 2) a learned offset beats the best offset-free (beta = 0) grid."""
    torch.manual_seed(0)
    x = torch.rand(32, 32) * 2.5 - 0.5
    bits = 3
    # Both start from the same offset-free point: beta = 0, s covering [0, max].
    with_offset = LsqPlusActQuantizer(bits)
    without = LsqPlusActQuantizer(bits)
    for q in (with_offset, without):
        with torch.no_grad():
            q.s.fill_(float(x.max()) / (2**bits - 1))
            q.beta.zero_()
        q.initialized.fill_(True)
    without.beta.requires_grad_(False)  # the beta = 0 quantizer (an LSQ-style unsigned grid)
    mse_offset = _train_reconstruction(with_offset, x, 200)
    mse_zero = _train_reconstruction(without, x, 200)
    beta = float(with_offset.beta.detach())
    assert beta < -0.2, f"beta must move to cover the negative values, got {beta}"
    assert float(without.beta.detach()) == 0.0
    assert mse_offset < 0.6 * mse_zero


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_activation_levels_at_most_2_pow_b(bits: int) -> None:
    torch.manual_seed(1)
    x = torch.randn(8, 4, 16) * 3 - 1
    q = LsqPlusActQuantizer(bits)
    q.initialize(x[:2])  # calibration on part of the data: the rest also exceeds the range
    out = q(x)
    for sample in out:
        assert sample.unique().numel() <= 2**bits
    # A wide input uses the whole grid: exactly 2^b values, beta .. beta + (2^b - 1) s.
    levels = out.unique()
    assert levels.numel() == 2**bits
    expected = q.beta.detach() + q.s.detach() * torch.arange(2**bits, dtype=x.dtype)
    assert torch.allclose(levels, expected, atol=1e-5)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_weight_levels_at_most_2_pow_b(bits: int) -> None:
    torch.manual_seed(2)
    layer = nn.Linear(64, 32)
    with torch.no_grad():
        layer.weight.normal_(0.0, 0.05)  # bell-shaped, about 3.4 std at the extremes
    q = LsqPlusWeightQuantizer(bits, layer)
    q.initialize(layer.weight)
    hard = q.hard(layer.weight)
    assert hard.unique().numel() == 2**bits  # 3 std init clips the tails: every code is used
    codes = q.export(layer.weight)["codes"]
    assert int(codes.min()) == -(2 ** (bits - 1)) and int(codes.max()) == 2 ** (bits - 1) - 1


def test_paper_inits() -> None:
    torch.manual_seed(3)
    x = torch.randn(16, 8) * 2 + 0.7
    qa = LsqPlusActQuantizer(3, init="minmax")
    qa.initialize(x)
    assert math.isclose(qa.s.item(), float((x.max() - x.min()) / 7), rel_tol=1e-6)
    assert math.isclose(qa.beta.item(), float(x.min()), rel_tol=1e-6)

    layer = nn.Conv2d(4, 6, 3)
    with torch.no_grad():
        layer.weight.normal_(0.3, 0.1)
    qw = LsqPlusWeightQuantizer(4, layer)
    qw.initialize(layer.weight)
    mu, sd = layer.weight.mean().item(), layer.weight.std(unbiased=False).item()
    assert math.isclose(qw.s.item(), max(abs(mu - 3 * sd), abs(mu + 3 * sd)) / 8, rel_tol=1e-5)

    qc = LsqPlusWeightQuantizer(4, layer, per_channel=True)
    qc.initialize(layer.weight)
    assert qc.s.shape == (6, 1, 1, 1)
    flat = layer.weight.detach().reshape(6, -1)
    m, s = flat.mean(1), flat.std(1, unbiased=False)
    assert torch.allclose(qc.s.flatten(), torch.maximum((m - 3 * s).abs(), (m + 3 * s).abs()) / 8)


def test_mse_init_beats_minmax_on_outliers() -> None:
    torch.manual_seed(4)
    x = torch.randn(32, 64)
    x[0, 0] = 40.0  # one outlier stretches the min-max range
    mm, mse = LsqPlusActQuantizer(3, init="minmax"), LsqPlusActQuantizer(3)  # default: the MSE init
    mm.initialize(x)
    mse.initialize(x)
    with torch.no_grad():
        err = [float(((q(x) - x) ** 2).mean()) for q in (mm, mse)]
    assert err[1] < 0.5 * err[0]


def test_activation_gradients_match_hand_derived_ste() -> None:
    bits = 2  # n = 0, p = 3
    q = LsqPlusActQuantizer(bits)
    with torch.no_grad():
        q.s.fill_(0.5)
        q.beta.fill_(-0.3)
    q.initialized.fill_(True)
    # (x - beta) / s = [-1.4, 0.2, 1.3, 2.9, 5.4]: below, inside x3, above.
    x = torch.tensor([[-1.0, -0.2, 0.35, 1.15, 2.4]], requires_grad=True)
    up = torch.tensor([[0.7, -1.1, 0.4, 2.0, -0.5]])
    (q(x) * up).sum().backward()

    s, beta, n, p = 0.5, -0.3, 0, 3
    g = 1.0 / math.sqrt(x.numel() * p)  # LSQ scale, N = features per sample (here 5)
    ds = dbeta = 0.0
    dx = []
    for xi, ui in zip(x.detach().flatten().tolist(), up.flatten().tolist()):
        z = (xi - beta) / s
        if z < n:
            ds += ui * n
            dbeta += ui
            dx.append(0.0)
        elif z > p:
            ds += ui * p
            dbeta += ui
            dx.append(0.0)
        else:
            ds += ui * (round(z) - z)
            dx.append(ui)
    assert math.isclose(q.s.grad.item(), g * ds, rel_tol=1e-5, abs_tol=1e-7)
    assert math.isclose(q.beta.grad.item(), g * dbeta, rel_tol=1e-5)
    assert torch.allclose(x.grad.flatten(), torch.tensor(dx))


def test_weight_step_gradient_matches_hand_derived_ste() -> None:
    layer = nn.Linear(3, 2)
    with torch.no_grad():  # s = 0.1, bits 3: n = -4, p = 3; w / s = [-6, -1.4, 0.2, 2.6, 3.7, 0.4]
        layer.weight.copy_(torch.tensor([[-0.6, -0.14, 0.02], [0.26, 0.37, 0.04]]))
    q = LsqPlusWeightQuantizer(3, layer)
    with torch.no_grad():
        q.s.fill_(0.1)
    q.initialized.fill_(True)
    q(layer.weight).sum().backward()
    z = [-6.0, -1.4, 0.2, 2.6, 3.7, 0.4]
    d = sum(-4 if v < -4 else 3 if v > 3 else round(v) - v for v in z)
    assert math.isclose(q.s.grad.item(), d / math.sqrt(6 * 3), rel_tol=1e-5)
    assert torch.equal(layer.weight.grad, torch.tensor([[0.0, 1, 1], [1, 0, 1]]))


def test_method_starts_activations_at_the_papers_mse_init() -> None:
    """``lsqplus`` v2 builds its activation quantizers with the MSE init: on a skewed batch (a
    GELU-like input) the initial (s, beta) reconstruct it with a lower MSE than min-max and within
    5% of the best (s, beta) of a dense grid around the min-max start."""
    cat = get_catalog()
    method = cat.methods.get("lsqplus")
    assert method.version == 2 and method.part_params("activation")["init"] == "mse"
    torch.manual_seed(5)
    z = torch.randn(64, 128)
    x = z * torch.sigmoid(1.702 * z) * 3  # GELU-shaped: long right tail, small negative part
    q = cat.quantizers.get("lsqplus-a").factory(bits=2, layer=None, **method.part_params("activation"))
    mm = LsqPlusActQuantizer(2, init="minmax")
    q.initialize(x)
    mm.initialize(x)
    with torch.no_grad():
        err, err_mm = (float(((a(x) - x) ** 2).mean()) for a in (q, mm))
        s0, b0 = float(mm.s), float(mm.beta)
        best = min(float(((lsqplus_ref(x, s0 * fs, b0 + fb * s0) - x) ** 2).mean())
                   for fs in torch.linspace(0.05, 1.0, 96).tolist() for fb in torch.linspace(-0.5, 2.0, 101).tolist())
    assert err < 0.7 * err_mm
    assert err <= 1.05 * best  # Adam on STE gradients, 200 steps: near, not at, the grid optimum


def lsqplus_ref(x: torch.Tensor, s: float, beta: float, p: int = 3) -> torch.Tensor:
    return torch.round(torch.clamp((x - beta) / s, 0, p)) * s + beta


def test_registered() -> None:
    cat = get_catalog()
    method = cat.methods.get("lsqplus")
    cat.check_method(method)
    assert (method.weight_quantizer, method.activation_quantizer) == ("lsqplus-w", "lsqplus-a")
