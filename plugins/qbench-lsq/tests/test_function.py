"""LSQ forward and gradients against PyTorch's native learnable fake-quant ops.

Same forward everywhere; same gradients where both rules agree (strictly inside, clearly outside);
the documented difference (within half a step beyond a clip limit) pinned exactly.
"""
from __future__ import annotations

import math

import torch
from qbench_lsq import LSQActivationQuantizer, LSQWeightQuantizer, lsq_quantize


def native_per_tensor(x: torch.Tensor, s: torch.Tensor, q_n: int, q_p: int, g: float) -> torch.Tensor:
    return torch._fake_quantize_learnable_per_tensor_affine(x, s, torch.zeros(1), -q_n, q_p, g)


def grads(fn, x: torch.Tensor, s: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.clone().requires_grad_(True)
    s = s.clone().requires_grad_(True)
    y = fn(x, s)
    y.backward(grad_out)
    return y.detach(), x.grad, s.grad


def safe_ratios(n: int, q_n: int, q_p: int, seed: int) -> torch.Tensor:
    """x/s values strictly inside (-Q_N, Q_P) or more than a step outside, away from .5 ties."""
    gen = torch.Generator().manual_seed(seed)
    inside = torch.empty(n).uniform_(-q_n + 0.05, q_p - 0.05, generator=gen)
    frac = inside - inside.floor()
    inside = torch.where((frac - 0.5).abs() < 0.02, inside + 0.1, inside)
    inside = inside.clamp(-q_n + 0.05, q_p - 0.05)
    far_hi = q_p + 1.2 + torch.rand(n // 4, generator=gen) * 5
    far_lo = -q_n - 1.2 - torch.rand(n // 4, generator=gen) * 5
    return torch.cat([inside, far_hi, far_lo])


@torch.no_grad()
def test_weight_forward_equals_native_per_tensor_and_per_channel() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Conv2d(8, 6, 3)
    w = layer.weight * 3  # wide enough to exercise both clip limits
    for bits in (2, 3, 4, 8):
        q_n, q_p = 2 ** (bits - 1), 2 ** (bits - 1) - 1
        q = LSQWeightQuantizer(bits, layer)
        q.initialize(layer.weight)
        ref = native_per_tensor(w, q.step, q_n, q_p, 1.0)
        assert torch.equal(q(w), ref)

        qc = LSQWeightQuantizer(bits, layer, per_channel=True)
        qc.initialize(layer.weight)
        assert qc.step.shape == (6,)
        ref = torch._fake_quantize_learnable_per_channel_affine(w, qc.step, torch.zeros(6), 0, -q_n, q_p, 1.0)
        assert torch.equal(qc(w), ref)


@torch.no_grad()
def test_activation_forward_equals_native_unsigned_and_signed() -> None:
    torch.manual_seed(1)
    relu_in = torch.relu(torch.randn(4, 3, 5, 5)) * 2
    signed_in = torch.randn(4, 7, 16)
    for bits in (2, 4):
        qa = LSQActivationQuantizer(bits)
        qa.initialize(relu_in)
        assert not qa.signed
        ref = native_per_tensor(relu_in * 1.5, qa.step, 0, 2**bits - 1, 1.0)
        assert torch.equal(qa(relu_in * 1.5), ref)

        qs = LSQActivationQuantizer(bits)
        qs.initialize(signed_in)
        assert qs.signed
        ref = native_per_tensor(signed_in * 1.5, qs.step, 2 ** (bits - 1), 2 ** (bits - 1) - 1, 1.0)
        assert torch.equal(qs(signed_in * 1.5), ref)


def test_weight_gradients_equal_native_where_rules_agree() -> None:
    torch.manual_seed(2)
    for bits in (2, 4):
        q_n, q_p = 2 ** (bits - 1), 2 ** (bits - 1) - 1
        s = torch.tensor([0.07])
        x = (safe_ratios(400, q_n, q_p, seed=bits) * s).reshape(20, 30)
        go = torch.randn_like(x)
        g = 1.0 / math.sqrt(x.numel() * q_p)  # the paper's g, computed independently here
        q = LSQWeightQuantizer(bits, torch.nn.Linear(30, 20))
        q.initialized.fill_(True)
        with torch.no_grad():
            q.step.copy_(s)
        xa = x.clone().requires_grad_(True)
        y1 = q(xa)
        y1.backward(go)
        gx1, gs1 = xa.grad, q.step.grad
        y2, gx2, gs2 = grads(lambda a, b: native_per_tensor(a, b, q_n, q_p, g), x, s, go)
        assert torch.equal(y1.detach(), y2)
        assert torch.equal(gx1, gx2)
        torch.testing.assert_close(gs1, gs2, rtol=1e-5, atol=1e-6)
        assert gs1.abs().item() > 0


def test_per_channel_gradients_equal_native_where_rules_agree() -> None:
    torch.manual_seed(3)
    bits, c = 3, 5
    q_n, q_p = 4, 3
    s = torch.rand(c) * 0.1 + 0.02
    ratios = torch.stack([safe_ratios(24, q_n, q_p, seed=10 + i)[torch.randperm(36)[:24]] for i in range(c)])
    x = ratios.reshape(c, 2, 3, 4) * s.view(c, 1, 1, 1)
    go = torch.randn_like(x)
    g = 1.0 / math.sqrt(24 * q_p)  # N = numel per channel
    layer = torch.nn.Conv2d(2, c, (3, 4))
    q = LSQWeightQuantizer(bits, layer, per_channel=True)
    q.initialized.fill_(True)
    with torch.no_grad():
        q.step.copy_(s)
    xa = x.clone().requires_grad_(True)
    q(xa).backward(go)
    xb, sb = x.clone().requires_grad_(True), s.clone().requires_grad_(True)
    torch._fake_quantize_learnable_per_channel_affine(xb, sb, torch.zeros(c), 0, -q_n, q_p, g).backward(go)
    assert torch.equal(xa.grad, xb.grad)
    torch.testing.assert_close(q.step.grad, sb.grad, rtol=1e-5, atol=1e-6)


def test_activation_step_gradient_scale_uses_features_per_sample() -> None:
    torch.manual_seed(4)
    bits, q_p = 3, 7
    s = torch.tensor([0.11])
    x = (safe_ratios(96, 0, q_p, seed=5)[torch.randperm(144)[:96]] * s).reshape(4, 3, 2, 4)
    go = torch.randn_like(x)
    qa = LSQActivationQuantizer(bits, signed=False)
    qa.initialized.fill_(True)
    with torch.no_grad():
        qa.step.copy_(s)
    xa = x.clone().requires_grad_(True)
    qa(xa).backward(go)
    g = 1.0 / math.sqrt((x.numel() // 4) * q_p)  # N = numel / batch
    _, gx, gs = grads(lambda a, b: native_per_tensor(a, b, 0, q_p, g), x, s, go)
    assert torch.equal(xa.grad, gx)
    torch.testing.assert_close(qa.step.grad, gs, rtol=1e-5, atol=1e-6)


def test_half_step_beyond_clip_limit_is_clipped_unlike_native() -> None:
    """x/s = Q_P + 0.3 (rounds back to Q_P): native passes it as inside, the paper clips it."""
    s = torch.tensor([0.5])
    for q_n, q_p in ((4, 3), (0, 15)):
        ratios = [q_p + 0.3]
        ratios.append(-q_n - 0.3)  # the same half step below the lower limit
        for r in ratios:
            x = torch.tensor([r]) * s
            go = torch.ones(1)
            y_n, gx_n, gs_n = grads(lambda a, b: native_per_tensor(a, b, q_n, q_p, 1.0), x, s, go)
            y_q, gx_q, gs_q = grads(lambda a, b: lsq_quantize(a, b, q_n, q_p, 1.0), x, s, go)
            assert torch.equal(y_n, y_q)  # same forward: rounds onto the limit
            # Native: range tested after rounding -> inside: dx = 1, ds = round(v) - v = -+0.3.
            assert gx_n.item() == 1.0
            torch.testing.assert_close(gs_n, torch.tensor([round(r) - r]))
            # Paper (qbench): range tested on x/s before rounding -> clipped: dx = 0, ds = limit.
            assert gx_q.item() == 0.0
            limit = float(q_p) if r > 0 else -float(q_n)
            assert gs_q.item() == limit


def test_exact_clip_limit_counts_as_outside() -> None:
    """The paper's inside case is strict (-Q_N < v/s < Q_P): v/s on a limit is clipped."""
    s = torch.tensor([0.5])
    q_n, q_p = 4, 3
    for r, limit in ((float(q_p), float(q_p)), (-float(q_n), -float(q_n))):
        _, gx, gs = grads(lambda a, b: lsq_quantize(a, b, q_n, q_p, 1.0), torch.tensor([r]) * s, s, torch.ones(1))
        assert gx.item() == 0.0 and gs.item() == limit
