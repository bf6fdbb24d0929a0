"""Defining properties of N2UQ's activation quantizer ``n2uq-a`` and the ``n2uq`` method."""
from __future__ import annotations

import pytest
import torch
from qbench_n2uq import N2UQActivationQuantizer, n2uq_levels
from qbench_n2uq.function import segment_boundaries
from torch import nn

from qbench.api import BitTarget, LayerBits, quant_layers, quantize_model
from qbench.testing import TrainRecipe, fp_model, get_catalog, prepare, tiny_digits, train


def _quantizer(bits: int, **kw) -> N2UQActivationQuantizer:
    kw.setdefault("grad_scale", "none")
    return N2UQActivationQuantizer(bits, None, **kw)


def _train_nonuniform(bits: int = 3, steps: int = 60, **kw) -> N2UQActivationQuantizer:
    """Fit a concave target with fixed s = 1: good thresholds crowd near 0, so they must move."""
    torch.manual_seed(0)
    q = _quantizer(bits, learn_scale=False, rescale_output=False, signed=False, **kw)
    q.initialize(torch.rand(256) * 2)
    q.scale.data.fill_(1.0)
    opt = torch.optim.Adam([q.t0, q.widths_raw], lr=0.02)
    for _ in range(steps):
        x = torch.rand(512) * 2
        loss = ((q(x) - 2 * (x / 2).sqrt()) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return q


def _distinct_steps(y: torch.Tensor) -> torch.Tensor:
    return torch.unique(y.detach()).diff()


def test_outputs_uniform_while_thresholds_learn_non_uniform():
    bits = 3
    q = _train_nonuniform(bits)
    widths = q.widths().detach()
    # learned input grid is not uniform ...
    assert (widths.max() - widths.min()) / widths.mean() > 0.2, widths
    # ... but every gap between distinct outputs is exactly 2/(2^b - 1)
    y = q(torch.linspace(-1, 3, 4001)).detach()
    gaps = _distinct_steps(y)
    assert torch.allclose(gaps, torch.full_like(gaps, 2 / (2**bits - 1)), atol=1e-6)
    assert torch.unique(y).numel() == 2**bits
    assert float(y.min()) == 0.0 and abs(float(y.max()) - 2.0) < 1e-6
    # output level = number of thresholds crossed
    x = torch.linspace(-1, 3, 777)
    crossed = (x[:, None] >= q.thresholds().detach()[None, :]).sum(1)
    assert torch.allclose(q(x), crossed * 2 / (2**bits - 1), atol=1e-6)


def test_rescaled_output_is_uniform_with_step_times_scale():
    torch.manual_seed(1)
    q = _quantizer(2)
    x = torch.relu(torch.randn(8, 4, 5, 5)) * 3
    q.initialize(x)
    s = float(q.scale.detach())
    gaps = _distinct_steps(q(x * 4))
    assert torch.allclose(gaps, torch.full_like(gaps, 2 * s / 3), rtol=1e-5)


def test_at_most_2_pow_b_distinct_values_per_sample():
    torch.manual_seed(2)
    for bits in (1, 2, 3, 4):
        q = N2UQActivationQuantizer(bits, None)
        x = torch.randn(4, 3, 6, 6) * 5
        q.initialize(x)
        y = q(x * 3)
        for sample in y:
            assert torch.unique(sample).numel() <= 2**bits


def test_generalized_ste_gradients_hand_computed():
    """b = 2, t0 = 0.1, a = (0.5, 1.0, 0.25): boundaries 0.1, 0.6, 1.6, 1.85; step 2/3.

    Inputs: -0.5 (below t0), 0.3 / 1.0 / 1.7 (u = 0.4 in segments 1 / 2 / 3), 3.0 (above t_3).
    Loss sum_k c_k y_k with c = 1..5. GSTE: dy/dx = step/a_i, dy/dt0 = -step/a_i,
    dy/da_j = -step/a_i (j < i), dy/da_i = -step u/a_i; zero outside [t0, t_3].
    """
    step = 2 / 3
    c = torch.tensor([1.0, 2, 3, 4, 5])
    exp_x = torch.tensor([0, 2 * step / 0.5, 3 * step / 1.0, 4 * step / 0.25, 0])
    exp_t0 = -(2 * step / 0.5 + 3 * step / 1.0 + 4 * step / 0.25)
    exp_a = torch.tensor([
        -2 * step * 0.4 / 0.5 - 3 * step / 1.0 - 4 * step / 0.25,
        -3 * step * 0.4 / 1.0 - 4 * step / 0.25,
        -4 * step * 0.4 / 0.25,
    ])
    q = _quantizer(2, learn_scale=False, rescale_output=False, signed=False)
    q.initialized.fill_(True)
    with torch.no_grad():
        q.t0.fill_(0.1)
        q.widths_raw[:3].copy_(torch.tensor([0.5, 1.0, 0.25]))
    x = torch.tensor([-0.5, 0.3, 1.0, 1.7, 3.0], requires_grad=True)
    y = q(x)
    assert torch.allclose(y, torch.tensor([0, 0, step, 2 * step, 2]))
    (y * c).sum().backward()
    assert torch.allclose(x.grad, exp_x, atol=1e-5)
    assert abs(float(q.t0.grad) - exp_t0) < 1e-4
    assert torch.allclose(q.widths_raw.grad[:3], exp_a, atol=1e-5)
    assert torch.all(q.widths_raw.grad[3:] == 0)


def test_gste_equals_gradient_of_piecewise_linear_surrogate():
    """Independent check: autograd of F(x) = step * sum_i clamp((x - t_{i-1}) / a_i, 0, 1)."""
    torch.manual_seed(3)
    t0 = torch.tensor(-0.2, dtype=torch.float64, requires_grad=True)
    a = (torch.rand(7, dtype=torch.float64) + 0.1).requires_grad_()
    x = (torch.rand(300, dtype=torch.float64) * 4 - 1).requires_grad_()
    w = torch.randn(300, dtype=torch.float64)
    (n2uq_levels(x, t0, a) * w).sum().backward()
    got = (x.grad.clone(), t0.grad.clone(), a.grad.clone())
    for p in (x, t0, a):
        p.grad = None
    b = segment_boundaries(t0, a)
    surrogate = (2 / 7) * torch.clamp((x[:, None] - b[None, :-1]) / a[None, :], 0, 1).sum(1)
    (surrogate * w).sum().backward()
    for g, ref in zip(got, (x.grad, t0.grad, a.grad)):
        assert torch.allclose(g, ref, atol=1e-10)


def test_bits_change_rederives_thresholds_on_the_learned_map():
    q = _train_nonuniform(bits=3)
    old = q.boundaries().detach().clone()
    q.bits = 2
    y = q(torch.linspace(-1, 3, 1001))
    new = q.boundaries().detach()
    assert new.numel() == 4 and torch.unique(y).numel() <= 4
    assert torch.allclose(new[[0, -1]], old[[0, -1]], atol=1e-6)  # range kept
    # the new boundaries lie where the old map F reaches the new levels 0, 2/3, 4/3, 2
    f_old = (2 / 7) * torch.clamp((new[:, None] - old[None, :-1]) / old.diff()[None, :], 0, 1).sum(1)
    assert torch.allclose(f_old, torch.arange(4.0) * 2 / 3, atol=1e-5)
    gaps = _distinct_steps(q(torch.linspace(-1, 3, 1001)))
    assert torch.allclose(gaps, torch.full_like(gaps, 2 / 3), atol=1e-6)


def test_signed_inputs_use_shifted_grid():
    torch.manual_seed(4)
    q = _quantizer(3)
    x = torch.randn(16, 10, 32)
    q.initialize(x)
    assert bool(q.signed)
    y = (q(x) / q.scale).detach()
    assert float(y.min()) >= -1 - 1e-6 and float(y.max()) <= 1 + 1e-6 and float(y.min()) < 0
    gaps = _distinct_steps(y)
    assert torch.allclose(gaps, torch.full_like(gaps, 2 / 7), atol=1e-5)
    fresh = _quantizer(3)  # the decided signedness travels with the state dict
    fresh.load_state_dict(q.state_dict())
    assert fresh.signed and torch.equal(fresh(x), q(x))


def test_calibrated_scale_beats_max_clipping():
    torch.manual_seed(5)
    x = torch.relu(torch.randn(20000)) ** 2  # heavy tail: max clipping wastes levels
    q = _quantizer(2)
    q.initialize(x)
    err = float(((q(x) - x) ** 2).sum().detach())
    ref = _quantizer(2)
    ref.initialize(x)
    ref.scale.data.fill_(float(x.max()) / 2)
    assert err < float(((ref(x) - x) ** 2).sum().detach())


def test_state_dict_round_trip_keeps_learned_thresholds():
    q = _train_nonuniform(bits=2, steps=20)
    fresh = _quantizer(2, learn_scale=False, rescale_output=False, signed=False)
    fresh.load_state_dict(q.state_dict())
    x = torch.linspace(-1, 3, 333)
    assert torch.equal(fresh(x), q(x))
    assert torch.equal(fresh.thresholds(), q.thresholds())


def test_method_n2uq_registered_and_trains_a_tiny_model():
    cat = get_catalog()
    method = cat.methods.get("n2uq")
    cat.check_method(method)
    assert method.activation_quantizer == "n2uq-a"
    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    wq = cat.quantizers.get(method.weight_quantizer).factory
    aq = cat.quantizers.get(method.activation_quantizer).factory
    plan = {"2": LayerBits(2, 2), "5": LayerBits(3, 2)}
    quantize_model(model, plan,
                   lambda b, m: wq(b, m, **method.part_params("weight")),
                   lambda b, m: aq(b, m, **method.part_params("activation")))
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    layers = dict(quant_layers(model))
    assert set(layers) == {"2", "5"}
    assert layers["2"].aq.t0.grad is not None and layers["2"].aq.widths_raw.grad.abs().sum() > 0
    model.eval()
    assert torch.isfinite(model(x)).all()


def test_raising_bits_needs_max_bits_and_keeps_the_learned_range():
    q = _train_nonuniform(bits=2, steps=20)
    assert q.widths_raw.numel() == 3  # default max_bits = construction bits: nothing unused stored
    q.bits = 3
    with pytest.raises(ValueError, match="max_bits"):
        q(torch.zeros(3))
    big = _train_nonuniform(bits=2, steps=20, max_bits=4)
    old = big.boundaries().detach().clone()
    big.bits = 4
    y = big(torch.linspace(-1, 3, 2001)).detach()
    new = big.boundaries().detach()
    assert new.numel() == 16 and torch.unique(y).numel() <= 16
    assert torch.allclose(new[[0, -1]], old[[0, -1]], atol=1e-6)
    gaps = _distinct_steps(y)
    assert torch.allclose(gaps, torch.full_like(gaps, 2 / 15), atol=1e-6)


def test_thresholds_move_during_a_short_qat():
    """The non-uniform part must be active: in a short QAT through the host's own path (resnet20,
    W2A2, 4 SGD steps at the quick suite's lr 0.01), ``n2uq`` (v3, thresholds on the unscaled GSTE
    gradient) changes every layer's widths (median > 0.1% in 4 steps), and at least 10x more than the v2 setting
    (LSQ's gradient scale on t0 and the widths), which left them all but frozen."""
    cat = get_catalog()
    method = cat.methods.get("n2uq")
    assert method.version == 3 and method.part_params("activation")["threshold_grad_scale"] == "none"
    data = tiny_digits(n_train=256)
    recipe = TrainRecipe(epochs=1, batch_size=64, lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="cosine")
    moved = {}
    for mode in ("none", "lsq"):
        m = method.compose(f"n2uq-{mode}", params={"activation": {"threshold_grad_scale": mode}})
        qmodel, _, _ = prepare(m, cat, fp_model("resnet20"), data, BitTarget(2, 2), "fp", 0)
        aqs = [layer.aq for _, layer in quant_layers(qmodel) if layer.aq is not None]
        start = [aq.widths().detach().clone() for aq in aqs]
        train(qmodel, lambda x, y: nn.functional.cross_entropy(qmodel(x), y), data, recipe, seed=0)
        moved[mode] = torch.stack([((aq.widths().detach() - w0) / w0).abs().max() for aq, w0 in zip(aqs, start)])
    assert (moved["none"] > 1e-4).all(), moved["none"]  # every layer's widths moved
    assert moved["none"].median() > 1e-3, moved["none"]  # typically by > 0.1% in 4 steps
    assert moved["none"].median() > 10 * moved["lsq"].median(), (moved["none"], moved["lsq"])
