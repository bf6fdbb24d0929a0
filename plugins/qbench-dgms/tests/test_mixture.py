"""DGMS's defining properties: MAP hard assignment, the pinned zero component, soft -> hard as tau
-> 0, at most 2^b levels, and chunking that changes memory but not results."""
from __future__ import annotations

import pytest
import torch
from qbench_dgms import DGMSWeightQuantizer
from qbench_dgms.mixture import full_means, log_joint, log_mixing, soft_weight
from torch import nn

from qbench.api import count_levels


def _set_mixture(q: DGMSWeightQuantizer, means: list[float], sigmas: list[float], pi: list[float]) -> None:
    """Put a hand-made mixture into ``q`` (means of components 1..K-1; sigmas/pi of all K)."""
    with torch.no_grad():
        q.means.copy_(torch.tensor(means))
        q.log_sigma.copy_(torch.tensor(sigmas).log())
        q.pi.copy_(torch.tensor(pi))
        q.fitted_bits.fill_(q.bits)
        q.initialized.fill_(True)


def _layer_weight(seed: int = 0, shape: tuple[int, ...] = (16, 8, 3, 3)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * 0.05


def test_hard_is_map_component_not_nearest_mean() -> None:
    q = DGMSWeightQuantizer(2, None)
    # component 1: wide (sigma 1) and heavy (pi 0.9) at 1.0; component 2: narrow and light at 0.3
    _set_mixture(q, means=[1.0, 0.3, -1.0], sigmas=[0.05, 1.0, 0.01, 0.1], pi=[0.05, 0.9, 0.03, 0.02])
    w = torch.tensor([0.35])
    table = q.means_table()
    nearest = table[(w[:, None] - table[None]).abs().argmin(1)]
    assert nearest.item() == 0.30000001192092896  # the nearest mean is the narrow component's
    assert q.hard(w).item() == 1.0  # but the wide, heavy component has the larger pi * N(w)

    # on a grid: hard(w) is the argmax of pi_k N(w; mu_k, sigma_k), computed independently here
    grid = torch.linspace(-2, 2, 801)
    pdf = torch.stack([p * torch.distributions.Normal(m, s).log_prob(grid).exp()
                       for m, s, p in zip(table.tolist(), [0.05, 1.0, 0.01, 0.1], [0.05, 0.9, 0.03, 0.02])])
    assert torch.equal(q.hard(grid), table[pdf.argmax(0)])
    # ... which is also argmax_k phi_k of the training-time soft assignment
    r = pdf / pdf.sum(0, keepdim=True)
    phi = torch.softmax(r / q.tau, dim=0)
    assert torch.equal(q.assign(grid), phi.argmax(0))
    near = table[(grid[:, None] - table[None]).abs().argmin(1)]
    assert (q.hard(grid) != near).sum() > 50  # the construction really separates MAP from nearest


def test_zero_component_stays_exactly_zero_and_prunes() -> None:
    torch.manual_seed(0)
    w = nn.Parameter(_layer_weight())
    q = DGMSWeightQuantizer(3, None)
    q.initialize(w)
    q.train()
    names = {n for n, _ in q.named_parameters()}
    assert names == {"means", "log_sigma", "pi", "log_tau"}
    assert q.means.numel() == 2**3 - 1  # the zero mean is not a learnable parameter
    opt = torch.optim.SGD([w, *q.parameters()], lr=0.05, momentum=0.9, weight_decay=5e-4)
    target = torch.randn_like(w) * 0.1
    before = q.means.detach().clone()
    for _ in range(5):
        opt.zero_grad()
        loss = ((q(w) - target) ** 2).sum()
        loss.backward()
        opt.step()
    assert not torch.equal(q.means.detach(), before)  # the other means did move
    assert q.means_table()[0].item() == 0.0
    idx = q.assign(w)
    hard = q.hard(w)
    assert (idx == 0).sum() > 0
    assert torch.all(hard[idx == 0] == 0.0)  # pruned: exactly 0, not merely small
    assert torch.all(hard[idx != 0] != 0.0)


def test_soft_weight_tends_to_hard_weight_as_tau_goes_to_zero() -> None:
    torch.manual_seed(0)
    w = _layer_weight()
    q = DGMSWeightQuantizer(3, None)
    q.initialize(w)
    q.train()
    hard = q.hard(w)
    # responsibility margin (top-1 minus top-2 r_k) of each weight: phi's error is ~exp(-margin / tau)
    means, log_sigma, pi = (t.detach() for t in q.components())
    r = torch.softmax(log_joint(w.flatten(), full_means(means), log_sigma, log_mixing(pi)), dim=0)
    top2 = r.topk(2, dim=0).values
    clear = (top2[0] - top2[1] >= 1e-2).view_as(w)
    assert clear.float().mean() > 0.95  # all but the weights right at a decision boundary
    max_all, mean_all, max_clear = [], [], []
    for tau in (1e-1, 1e-2, 1e-3, 1e-4):
        q.tau = tau
        with torch.no_grad():
            d = (q(w) - hard).abs()
        max_all.append(float(d.max()))
        mean_all.append(float(d.mean()))
        max_clear.append(float(d[clear].max()))
    assert all(a > b for a, b in zip(max_all, max_all[1:])), max_all
    assert all(a > b for a, b in zip(mean_all, mean_all[1:])), mean_all
    assert mean_all[-1] < mean_all[0] / 100, mean_all
    assert max_all[0] > 1e-3  # at a large temperature the soft weight really is soft
    assert max_clear[-1] < 1e-12, max_clear  # at tau = 1e-4 the soft weight is the hard weight


def test_hard_layer_has_at_most_2_pow_b_levels() -> None:
    for bits in (1, 2, 3, 4):
        torch.manual_seed(bits)
        conv = nn.Conv2d(8, 16, 3)
        q = DGMSWeightQuantizer(bits, conv)
        q.initialize(conv.weight)
        hard = q.hard(conv.weight)
        assert count_levels(hard, 1) <= 2**bits
        assert set(hard.unique().tolist()) <= set(q.means_table().tolist())
        assert count_levels(hard, 1) >= 2 ** bits - 1  # a real layer uses (nearly) every level


def test_chunked_and_unchunked_soft_weights_and_gradients_are_equal() -> None:
    torch.manual_seed(0)
    w0 = _layer_weight(shape=(10, 7, 3, 3)).double()  # 630 weights; float64 so the only
    results = []  # difference left would be a real one, not float32 summation order
    for chunk in (None, 64, 1000):  # ordinary graph, 10 ragged blocks, one block
        q = DGMSWeightQuantizer(3, None, tau=0.05).double()
        torch.manual_seed(1)
        q.initialize(w0)
        w = w0.clone().requires_grad_()
        means, log_sigma, pi = q.components()
        out = soft_weight(w, means, log_sigma, pi, q.log_tau.exp(), chunk)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append([out.detach(), w.grad, q.means.grad, q.log_sigma.grad, q.pi.grad, q.log_tau.grad])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert a is not None and a.abs().sum() > 0
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)


def test_chunking_keeps_only_the_inputs_for_backward() -> None:
    """The torch graph: chunked, autograd saves O(N) for the backward; unchunked, several K x N
    tensors. The C kernel (the default) saves only the weight and K-sized tables."""
    w = _layer_weight(shape=(64, 32, 3, 3)).requires_grad_()  # N = 18432
    n, k = w.numel(), 2**4
    saved: dict[str, int] = {}
    for name, kwargs in (("chunked", {"chunked": True, "kernel": "torch"}),
                         ("unchunked", {"chunked": False, "kernel": "torch"}), ("c", {"kernel": "c"})):
        q = DGMSWeightQuantizer(4, None, chunk_size=2**12, **kwargs)
        torch.manual_seed(0)
        q.initialize(w)
        total = [0]

        def pack(t: torch.Tensor, total: list[int] = total) -> torch.Tensor:
            total[0] += t.numel()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = q.train()(w)  # what the forward keeps alive until the backward
        out.sum().backward()
        saved[name] = total[0]
    assert saved["chunked"] < 3 * n, saved
    assert saved["unchunked"] > 3 * k * n, saved
    assert saved["c"] <= n + 8 * k, saved


def test_gradients_reach_weight_and_every_mixture_parameter_without_ste() -> None:
    torch.manual_seed(0)
    w = _layer_weight().requires_grad_()
    q = DGMSWeightQuantizer(2, None, tau=0.1)
    q.initialize(w)
    out = q.train()(w)
    g = torch.randn_like(out)
    (out * g).sum().backward()
    for p in (w, q.means, q.log_sigma, q.pi, q.log_tau):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    # not an STE: the weight gradient is not the upstream gradient passed through unchanged
    assert not torch.allclose(w.grad, g, rtol=0.1, atol=1e-3)
    frozen = DGMSWeightQuantizer(2, None, learn_tau=False)
    assert not frozen.log_tau.requires_grad and abs(frozen.tau - 0.01) < 1e-9


def test_mixture_lr_scale_is_an_optimizer_setting_not_a_gradient_change() -> None:
    """The paper's lr for the mixture is declared to the optimizer (``optim_specs``); the forward
    and every gradient are the same whatever ``mixture_lr_scale`` is."""
    w0 = _layer_weight()
    grads = {}
    for s in (1.0, 0.01):
        torch.manual_seed(0)
        q = DGMSWeightQuantizer(2, None, tau=0.1, mixture_lr_scale=s)
        q.initialize(w0)
        w = w0.clone().requires_grad_()
        out = q.train()(w)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads[s] = (out.detach(), w.grad, [p.grad for p in (q.means, q.log_sigma, q.pi, q.log_tau)])
        assert {n: spec.lr_scale for n, spec in q.optim_specs().items()} == dict.fromkeys(
            ("means", "log_sigma", "pi", "log_tau"), s)
    torch.testing.assert_close(grads[0.01][0], grads[1.0][0])  # same forward
    torch.testing.assert_close(grads[0.01][1], grads[1.0][1])  # same weight gradient
    for a, b in zip(grads[0.01][2], grads[1.0][2]):
        assert b.abs().sum() > 0
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="mixture_lr_scale"):
        DGMSWeightQuantizer(2, None, mixture_lr_scale=0.0)
