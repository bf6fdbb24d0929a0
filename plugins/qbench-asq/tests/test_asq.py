"""ASQ activation quantizer: adapter init, per-sample adaptation, and the exact gradient rule."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from qbench_asq.asq import ASQActQuantizer, ASQAdapter, asq_quantize
from torch import Tensor, nn

from qbench.api import QuantConv2d, grad_scale, int_range, lsq_grad_scale, round_ste
from qbench.testing import get_catalog, load_digits

# --- adapter initialisation --------------------------------------------------------------------


def test_adapter_structure_and_last_layer_init() -> None:
    """C >= 8: Linear(C, C/4)-ReLU-Linear(C/4, 1); C < 8: one Linear(C, 1); last bias 1, weight N(0, 0.01)."""
    torch.manual_seed(0)
    small = ASQAdapter(4)
    assert isinstance(small.net, nn.Linear) and small.net.weight.shape == (1, 4)
    big = ASQAdapter(4096)
    first, act, last = big.net
    assert isinstance(act, nn.ReLU) and first.weight.shape == (1024, 4096) and last.weight.shape == (1, 1024)
    for a in (small, big):
        assert torch.equal(a.last.bias, torch.ones(1))
    w = big.last.weight
    assert abs(w.mean().item()) < 0.002 and 0.009 < w.std().item() < 0.011


def test_beta_is_one_at_init() -> None:
    torch.manual_seed(0)
    for conv in (nn.Conv2d(4, 8, 3), nn.Conv2d(32, 8, 3)):
        aq = ASQActQuantizer(4, conv)
        beta = aq.beta(torch.relu(torch.randn(16, conv.in_channels, 6, 6)))
        assert beta.shape == (16,) and (beta - 1).abs().max() < 0.05


# --- per-sample adaptation on real data --------------------------------------------------------


class TinyNet(nn.Module):
    """conv(1->8) -> ReLU -> ASQ-quantized conv(8->16) -> ReLU -> GAP -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.aq = ASQActQuantizer(2, conv2)
        self.conv2 = QuantConv2d.from_float(conv2, None, self.aq, "conv2")
        self.fc = nn.Linear(16, 10)

    def features(self, x: Tensor) -> Tensor:
        return torch.relu(self.conv1(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.relu(self.conv2(self.features(x))).mean((2, 3)))


def test_beta_varies_per_sample_after_training_on_digits() -> None:
    torch.manual_seed(0)
    data = load_digits()
    x, y = data.train.tensors
    x_test = data.test.tensors[0][:200]
    net = TinyNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    with torch.no_grad():
        beta0 = net.aq.beta(net.features(x_test))
    for step in range(40):
        idx = torch.randint(0, len(y), (64,))
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        beta1 = net.aq.beta(net.features(x_test))
    spread0 = (beta0.std() / beta0.mean()).item()
    spread1 = (beta1.std() / beta1.mean()).item()
    assert spread0 < 0.01, spread0  # ~constant at init
    assert spread1 > 0.005 and spread1 > 20 * spread0, (spread0, spread1)
    assert net.aq.adapter.last.weight.grad is not None


# --- gradients --------------------------------------------------------------------------------


def _grid_inputs(bits: int, signed: bool, s: float, beta: Tensor) -> tuple[Tensor, Tensor]:
    """x = v * s * beta with v at least 0.2 away from rounding and range boundaries.

    Returns (x, v); a few entries lie well outside the range on each side.
    """
    q_n, q_p = int_range(bits, signed)
    g = torch.Generator().manual_seed(1)
    k = torch.randint(-q_n, q_p + 1, (beta.numel(), 3, 4, 4), generator=g).double()
    v = k + (torch.rand(k.shape, generator=g, dtype=torch.float64) - 0.5) * 0.6
    v = v.clamp(-q_n + 0.2, q_p - 0.2)  # keep in-range entries clearly inside
    v[0, 0, 0, :2] = q_p + 1.7
    v[1, 1, 1, :2] = -q_n - 1.7
    return v * s * beta.reshape(-1, 1, 1, 1), v


def _linearised_loss(s: Tensor, beta: Tensor, x: Tensor, c: Tensor, v0: Tensor, bits: int, signed: bool) -> Tensor:
    """The function whose exact gradient ASQ's rule is: rounding residual and range frozen at v0.

    Inside: x + s_a * (round(v0) - v0) (so d/ds_a = round(v0) - v0 = -x/s_a + round(x/s_a) at the base);
    outside: s_a * bound. It equals the quantizer's output at the base point and is smooth in s, beta.
    """
    q_n, q_p = int_range(bits, signed)
    s_a = (s * beta).reshape(-1, 1, 1, 1)
    inside = (v0 >= -q_n) & (v0 <= q_p)
    out = torch.where(inside, x + s_a * (torch.round(v0) - v0), s_a * torch.clamp(torch.round(v0), -q_n, q_p))
    return (c * out).sum()


def test_s_and_beta_gradients_match_finite_differences() -> None:
    for bits, signed in ((3, False), (4, True)):
        s0, beta0 = 0.37, torch.tensor([0.8, 1.3, 1.05], dtype=torch.float64)
        x, v0 = _grid_inputs(bits, signed, s0, beta0)
        c = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        s = torch.tensor(s0, dtype=torch.float64, requires_grad=True)
        beta = beta0.clone().requires_grad_(True)
        out = asq_quantize(x, s, beta, bits, signed)
        assert torch.allclose(_linearised_loss(torch.tensor(s0, dtype=torch.float64), beta0, x, c, v0, bits, signed),
                              (c * out).sum())  # same value at the base point
        (c * out).sum().backward()
        g = lsq_grad_scale(x.numel(), int_range(bits, signed)[1])  # the batch's count (official code)
        h = 1e-6
        fd_s = (_linearised_loss(torch.tensor(s0 + h, dtype=torch.float64), beta0, x, c, v0, bits, signed)
                - _linearised_loss(torch.tensor(s0 - h, dtype=torch.float64), beta0, x, c, v0, bits, signed)) / (2 * h)
        assert torch.allclose(s.grad, g * fd_s, rtol=1e-6), (s.grad, g * fd_s)
        for b in range(3):
            e = torch.zeros(3, dtype=torch.float64)
            e[b] = h
            fd_b = (_linearised_loss(torch.tensor(s0, dtype=torch.float64), beta0 + e, x, c, v0, bits, signed)
                    - _linearised_loss(torch.tensor(s0, dtype=torch.float64), beta0 - e, x, c, v0, bits, signed)) / (2 * h)
            assert torch.allclose(beta.grad[b], fd_b, rtol=1e-6), (b, beta.grad[b], fd_b)


def test_saturated_inputs_gradient_equals_true_derivative() -> None:
    """All inputs clipped: the quantizer is exactly s_a * bound, smooth, and the rule is exact."""
    s0, beta0 = 0.5, torch.tensor([1.0, 2.0], dtype=torch.float64)
    x = torch.tensor([9.0, -9.0], dtype=torch.float64).repeat(2, 3, 1)  # (B, tokens, C) input
    s = torch.tensor(s0, dtype=torch.float64, requires_grad=True)
    beta = beta0.clone().requires_grad_(True)
    asq_quantize(x, s, beta, 3, True).sum().backward()
    f = lambda sv, bv: asq_quantize(x, torch.tensor(sv, dtype=torch.float64), bv, 3, True).sum()  # noqa: E731
    h = 1e-5
    g = lsq_grad_scale(12, 3)  # the whole batch: 2 samples x 6 elements
    assert torch.allclose(s.grad, g * (f(s0 + h, beta0) - f(s0 - h, beta0)) / (2 * h))
    e = torch.tensor([h, 0.0], dtype=torch.float64)
    assert torch.allclose(beta.grad[0], (f(s0, beta0 + e) - f(s0, beta0 - e)) / (2 * h))


def test_gradients_match_ste_autograd_reference() -> None:
    """x: STE (1 inside, 0 outside); s, beta: LSQ via round_ste/grad_scale autograd."""
    bits, signed = 3, False
    s0, beta0 = 0.37, torch.tensor([0.8, 1.3, 1.05], dtype=torch.float64)
    x0, _ = _grid_inputs(bits, signed, s0, beta0)
    q_n, q_p = int_range(bits, signed)
    c = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    grads = []
    for custom in (True, False):
        x = x0.clone().requires_grad_(True)
        s = torch.tensor(s0, dtype=torch.float64, requires_grad=True)
        beta = beta0.clone().requires_grad_(True)
        if custom:
            out = asq_quantize(x, s, beta, bits, signed)
        else:
            s_a = (grad_scale(s, lsq_grad_scale(x.numel(), q_p)) * beta).reshape(-1, 1, 1, 1)
            out = round_ste(torch.clamp(x / s_a, -q_n, q_p)) * s_a
        (c * out).sum().backward()
        grads.append((out.detach(), x.grad, s.grad, beta.grad))
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    v = x0 / (s0 * beta0.reshape(-1, 1, 1, 1))
    inside = (v >= -q_n) & (v <= q_p)
    assert torch.equal(grads[0][1], c * inside)


# --- layouts, signedness, inference -----------------------------------------------------------


def test_linear_tokens_signed_and_levels_per_sample() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(16, 8)
    aq = ASQActQuantizer(3, lin)
    x = F.layer_norm(torch.randn(5, 7, 16), (16,))  # ViT-like tokens, signed
    aq.initialize(x)
    assert bool(aq.signed)
    with torch.no_grad():
        aq.adapter.last.weight.normal_(0, 0.5)  # make beta clearly sample dependent
    aq.eval()
    with torch.no_grad():
        out = aq(x)
        beta = aq.beta(x)
        assert torch.allclose(beta, aq.adapter(x.mean(1)))  # pooled over tokens
    assert beta.std() > 0.01
    for b in range(5):
        x_int = out[b] / (aq.s * beta[b])
        assert torch.allclose(x_int, x_int.round(), atol=1e-4)
        assert x_int.round().min() >= -4 and x_int.round().max() <= 3
        assert out[b].unique().numel() <= 2 ** 3
    aq.bits = 2
    with torch.no_grad():
        assert all(aq(x)[b].unique().numel() <= 4 for b in range(5))


def test_init_step_from_first_batch_unsigned_conv() -> None:
    conv = nn.Conv2d(8, 4, 3)
    aq = ASQActQuantizer(4, conv)
    x = torch.relu(torch.randn(4, 8, 5, 5, generator=torch.Generator().manual_seed(0)))
    aq.initialize(x)
    assert not bool(aq.signed)
    assert torch.allclose(aq.s, 2 * x.abs().mean() / 15 ** 0.5)
    assert aq(x).min() >= 0


def test_step_gradient_scale_counts_the_whole_batch() -> None:
    """Method ``asq`` (since v2) scales ``s``'s gradient by 1/sqrt(Q_P * numel of the BATCH), as the
    authors' implementation does: s's gradient is sqrt(B) times smaller than with one sample's count
    (method v1), and beta's gradient (no scale) and x's are unchanged."""
    cat = get_catalog()
    method = cat.methods.get("asq")
    assert method.version >= 2 and method.part_params("activation")["grad_count"] == "batch"
    torch.manual_seed(7)
    batch = 16
    x0 = torch.rand(batch, 4, 5, 5, dtype=torch.float64) * 3
    grads = {}
    for count in ("batch", "sample"):
        x = x0.clone().requires_grad_(True)
        s = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
        beta = torch.linspace(0.9, 1.1, batch, dtype=torch.float64).requires_grad_(True)
        asq_quantize(x, s, beta, 2, False, grad_count=count).pow(2).sum().backward()
        grads[count] = (s.grad, beta.grad, x.grad)
    assert grads["sample"][0].abs() > 0
    torch.testing.assert_close(grads["batch"][0], grads["sample"][0] / batch**0.5)
    torch.testing.assert_close(grads["batch"][1], grads["sample"][1])
    torch.testing.assert_close(grads["batch"][2], grads["sample"][2])
    conv = nn.Conv2d(4, 8, 3)
    aq = cat.quantizers.get("asq-a").factory(bits=2, layer=conv, **method.part_params("activation"))
    assert aq.grad_count == "batch"
