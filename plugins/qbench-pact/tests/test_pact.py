"""PACT's defining properties: exact clip gradients for x and alpha, 2^k levels, L2 on alpha."""
from __future__ import annotations

import copy

import pytest
import torch
from qbench_pact import PACTActQuantizer
from torch import nn

from qbench.api import OptimSpec
from qbench.testing import TrainRecipe, counted_reads, get_catalog, tiny_digits, train


def _quantizer(bits: int, alpha: float, **kw: object) -> PACTActQuantizer:
    q = PACTActQuantizer(bits, init_alpha=alpha, **kw)
    return q


def _inputs(seed: int, alpha: float, signed: bool = False) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 200, generator=g) * alpha * 0.8 + (0 if signed else alpha * 0.3)
    x[0, :5] = alpha  # exactly at the clip level: both gradients are 1 there
    x[0, 5:10] = 0.0 if not signed else -alpha
    return x.requires_grad_(True)


@pytest.mark.parametrize("k", [2, 4])
def test_gradients_are_the_papers_indicators(k: int) -> None:
    alpha = 1.5
    q = _quantizer(k, alpha, alpha_decay=0.0, signed=False)
    x = _inputs(k, alpha)
    upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(99))
    (q(x) * upstream).sum().backward()
    xd = x.detach()
    at_or_above = xd >= alpha
    assert at_or_above.sum() > 10 and (xd < 0).sum() > 10  # both clip sides are exercised
    assert torch.allclose(q.alpha.grad, upstream[at_or_above].sum(), rtol=0, atol=1e-4)
    assert torch.equal(x.grad, upstream * ((xd >= 0) & (xd <= alpha)).float())
    # with a unit upstream gradient, alpha's gradient counts the positions with x >= alpha
    q.alpha.grad = None
    q(x).sum().backward()
    assert float(q.alpha.grad) == float(at_or_above.sum())


@pytest.mark.parametrize("k", [2, 3, 4])
def test_outputs_have_at_most_2k_levels_on_the_alpha_grid(k: int) -> None:
    alpha = 2.0
    q = _quantizer(k, alpha, signed=False)
    x = _inputs(10 + k, alpha).detach()
    y = q(x)
    n = 2**k - 1
    expected = torch.round(x.clamp(0, alpha) * n / alpha) * alpha / n
    assert torch.allclose(y, expected, atol=1e-6)
    for row in y:  # the audit counts distinct values per sample
        assert len(torch.unique(row)) <= 2**k
    assert y.min() == 0 and torch.isclose(y.max(), torch.tensor(alpha))


def test_signed_variant_clips_symmetrically() -> None:
    alpha, k = 1.0, 2
    q = _quantizer(k, alpha, alpha_decay=0.0)  # signedness from the first batch
    x = _inputs(3, alpha, signed=True)
    y = q(x)
    assert q.signed
    for row in y.detach():
        assert len(torch.unique(row)) <= 2**k
    codes = (y.detach() + alpha) * 3 / (2 * alpha)
    assert torch.allclose(codes, codes.round(), atol=1e-5)
    y.sum().backward()
    xd = x.detach()
    assert float(q.alpha.grad) == float((xd >= alpha).sum() - (xd <= -alpha).sum())
    assert torch.equal(x.grad, ((xd >= -alpha) & (xd <= alpha)).float())


def test_alpha_l2_penalty_is_alphas_weight_decay_in_the_hosts_optimizer() -> None:
    """The penalty is declared (``optim_specs``), not hooked: alpha's gradient is the paper's
    indicator sum alone, and the host's training loop applies ``alpha_decay`` as alpha's weight
    decay, so alpha's first SGD step is exactly -lr (count + alpha_decay * alpha)."""
    alpha, decay = 1.5, 0.1
    q = _quantizer(3, alpha, alpha_decay=decay, signed=False)
    assert q.optim_specs() == {"alpha": OptimSpec(lr_scale=1.0, weight_decay=decay)}
    x = _inputs(5, alpha)
    count = float((x.detach() >= alpha).sum())
    q(x).sum().backward()
    assert float(q.alpha.grad) == count  # no penalty in the gradient itself
    q2 = copy.deepcopy(q)  # the host copies models: the setting travels with the quantizer
    assert q2.optim_specs() == q.optim_specs()
    with pytest.raises(ValueError, match="alpha_decay"):
        _quantizer(3, alpha, alpha_decay=-1.0)

    # through the host's loop: a model whose only parameter is alpha, one step of plain SGD
    q3 = _quantizer(3, alpha, alpha_decay=decay, signed=False)
    data = tiny_digits(n_train=64)
    xs = data.train.tensors[0]
    q3.initialize(xs)
    n_up = float((xs >= alpha).sum())
    lr = 0.01
    recipe = TrainRecipe(epochs=1, batch_size=64, lr=lr, momentum=0.0, weight_decay=0.0, schedule="constant")
    train(q3, lambda x, y: q3(x).sum(), data, recipe, seed=0)
    assert float(q3.alpha.detach()) == pytest.approx(alpha - lr * (n_up + decay * alpha), rel=1e-6)


def test_alpha_learns_by_gradient_descent() -> None:
    """A loss that wants larger outputs raises alpha; one that wants smaller ones (the penalty) lowers it."""
    torch.manual_seed(0)
    q = _quantizer(4, 1.0, alpha_decay=0.0, signed=False)
    opt = torch.optim.SGD(q.parameters(), lr=0.01)
    x = torch.rand(4, 100) * 3
    for _ in range(5):
        opt.zero_grad()
        (-q(x).mean()).backward()
        opt.step()
    assert q.alpha.item() > 1.0
    q2 = _quantizer(4, 1.0, alpha_decay=1.0, signed=False)
    opt2 = torch.optim.SGD(q2.parameters(), lr=0.1, weight_decay=q2.optim_specs()["alpha"].weight_decay)
    for _ in range(5):
        opt2.zero_grad()
        (q2(torch.zeros(1, 10)).sum()).backward()  # no x >= alpha: only the L2 term acts
        opt2.step()
    assert q2.alpha.item() == pytest.approx(0.9**5, rel=1e-5)


def test_initialisation_choices() -> None:
    x = torch.relu(torch.randn(16, 256, generator=torch.Generator().manual_seed(1)))
    fixed = PACTActQuantizer(4, init_alpha=10.0)
    fixed.initialize(x)
    assert fixed.alpha.item() == 10.0 and not fixed.signed
    mx = PACTActQuantizer(4, init_alpha="max")
    mx.initialize(x)
    assert mx.alpha.item() == pytest.approx(float(x.max()))
    mse = PACTActQuantizer(2, init_alpha="mse")
    mse.initialize(x)
    assert 0 < mse.alpha.item() < float(x.max())  # at 2 bits the MSE-best clip is below the max
    err = lambda q: (q(x) - x).pow(2).mean().item()  # noqa: E731
    assert err(mse) < err(PACTActQuantizer(2, init_alpha="max"))


def test_bits_are_read_at_every_forward() -> None:
    q = _quantizer(4, 1.0, signed=False)
    x = torch.rand(1, 1000)
    assert len(torch.unique(q(x))) > 4
    q.bits = 2
    assert len(torch.unique(q(x))) <= 4


def test_method_uses_dorefa_weights_and_pact_activations() -> None:
    cat = get_catalog()
    m = cat.methods.get("pact")
    assert (m.weight_quantizer, m.activation_quantizer) == ("dorefa-w", "pact-a")
    cat.check_method(m)
    assert cat.plugin_of(cat.quantizers, "dorefa-w") != cat.plugin_of(cat.quantizers, "pact-a")
    # v3: DoReFa weights at the layer's FP scale (max|w_FP|), not the paper's bare [-1, 1] grid
    assert m.version == 3 and m.part_params("weight")["scale"] == "max_abs"
    layer = nn.Linear(64, 64)
    wq = cat.quantizers.get("dorefa-w").factory(bits=4, layer=layer, **m.part_params("weight"))
    wq.initialize(layer.weight)
    ratio = float(wq.hard(layer.weight).norm() / layer.weight.norm())
    assert 0.6 < ratio < 1.6, ratio


def test_eval_mode_calibration_is_redone_once_on_the_first_training_batch() -> None:
    """The host calibrates in eval mode; alpha then comes from the first batch training sees."""
    g = torch.Generator().manual_seed(2)
    eval_batch = torch.rand(4, 500, generator=g) * 50  # e.g. BN on stale running statistics
    train_batch = torch.rand(4, 500, generator=g) * 2
    q = PACTActQuantizer(3, init_alpha="max")
    q.eval()
    q.initialize(eval_batch)
    assert q.alpha.item() == pytest.approx(float(eval_batch.max()))
    q.train()
    q(train_batch)
    assert q.alpha.item() == pytest.approx(float(train_batch.max()))
    q(train_batch * 10)  # only once
    assert q.alpha.item() == pytest.approx(float(train_batch.max()))
    keep = PACTActQuantizer(3, init_alpha="max", calibrate="first")
    keep.eval()
    keep.initialize(eval_batch)
    keep.train()
    keep(train_batch)
    assert keep.alpha.item() == pytest.approx(float(eval_batch.max()))


def test_a_settled_alpha_is_not_read_back_at_every_training_step() -> None:
    """Once alpha has settled, the forward keeps that in Python: reading the flag from a CUDA buffer
    at every step would wait for the GPU once per layer per step. A loaded state is read afresh."""
    q = PACTActQuantizer(3, init_alpha="max")
    q.eval()
    q.initialize(torch.rand(4, 50) * 50)
    q.train()
    x = torch.rand(4, 50)
    q(x)  # settles alpha on the first training batch
    with counted_reads() as calls:
        q(x).sum().backward()
    assert calls == []
    fresh = PACTActQuantizer(3, init_alpha="max")
    fresh.load_state_dict({**q.state_dict(), "alpha_settled": torch.tensor(False)})
    fresh.train()
    fresh(x * 3)  # not settled in the loaded state: calibrates on this batch
    assert fresh.alpha.item() == pytest.approx(float((x * 3).max()))
