"""LSQ quantizer modules: levels, initialisation, live bit-width, state dict, use in a model."""
from __future__ import annotations

import math

import pytest
import torch
from qbench_lsq import LSQActivationQuantizer, LSQWeightQuantizer
from torch import nn

from qbench.api import QuantConv2d, QuantLinear


def distinct(t: torch.Tensor) -> int:
    return int(torch.unique(t).numel())


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("per_channel", [False, True])
def test_hard_weights_have_at_most_2_pow_b_levels(bits: int, per_channel: bool) -> None:
    torch.manual_seed(bits)
    layer = nn.Conv2d(16, 8, 3)
    q = LSQWeightQuantizer(bits, layer, per_channel=per_channel)
    q.initialize(layer.weight)
    q_n, q_p = 2 ** (bits - 1), 2 ** (bits - 1) - 1
    steps = q.step.detach().view(-1, 1).expand(8, 1)
    # Besides the layer's own weights, a weight that sweeps each channel from 2 steps below the
    # lower clip limit to 2 steps above the upper one, so every level must appear.
    sweep = torch.linspace(-(q_n + 2), q_p + 2, 16 * 9)[torch.randperm(16 * 9)]
    for w in (layer.weight.detach(), (sweep.view(1, -1) * steps).view_as(layer.weight)):
        check_levels(q, w, steps, bits, q_n, q_p)
    hard = q.hard(w)
    groups = hard.view(8, -1) if per_channel else hard.view(1, -1)
    assert all(distinct(row) == 2**bits for row in groups)  # the full range is really used
    # The export agrees with the hard weight and holds integer codes.
    exp = q.export(w)
    assert torch.equal(exp["weight"], hard)
    assert exp["codes"].dtype == torch.int8 and int(exp["codes"].min()) == -q_n and int(exp["codes"].max()) == q_p


def check_levels(q: LSQWeightQuantizer, w: torch.Tensor, steps: torch.Tensor, bits: int, q_n: int, q_p: int) -> None:
    hard = q.hard(w)
    groups = hard.view(8, -1) if q.per_channel else hard.view(1, -1)
    for row, s in zip(groups, steps):
        assert distinct(row) <= 2**bits
        codes = row / s
        assert torch.allclose(codes, codes.round(), atol=1e-4)  # integer multiples of the step
        assert codes.min().round() >= -q_n and codes.max().round() <= q_p


def test_bits_are_read_at_every_forward() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(64, 32)
    q = LSQWeightQuantizer(4, layer)
    q.initialize(layer.weight)
    w = layer.weight.detach() * 10
    assert distinct(q.hard(w)) == 16
    q.bits = 2
    assert distinct(q.hard(w)) == 4
    qa = LSQActivationQuantizer(4)
    x = torch.relu(torch.randn(8, 64)) * 10
    qa.initialize(x)
    assert distinct(qa(x)) == 16
    qa.bits = 2
    assert distinct(qa(x)) == 4


def test_step_size_init_formula() -> None:
    torch.manual_seed(0)
    layer = nn.Conv2d(4, 6, 3)
    w = layer.weight.detach()
    for bits in (2, 3, 4):
        q_p = 2 ** (bits - 1) - 1
        q = LSQWeightQuantizer(bits, layer)
        q.initialize(w)
        torch.testing.assert_close(q.step, (2 * w.abs().mean() / math.sqrt(q_p)).reshape(1))
        qc = LSQWeightQuantizer(bits, layer, per_channel=True)
        qc.initialize(w)
        expected = torch.stack([2 * w[c].abs().mean() / math.sqrt(q_p) for c in range(6)])
        torch.testing.assert_close(qc.step.detach(), expected)
        assert not torch.allclose(qc.step, qc.step[0].expand(6))  # really per channel

    x = torch.relu(torch.randn(8, 4, 5, 5))
    qa = LSQActivationQuantizer(3)
    qa.initialize(x)
    torch.testing.assert_close(qa.step, (2 * x.mean() / math.sqrt(7)).reshape(1))
    xs = torch.randn(8, 10, 12)  # e.g. a ViT token matrix after LayerNorm: signed range
    qs = LSQActivationQuantizer(3)
    qs.initialize(xs)
    assert qs.signed and qs.int_range() == (4, 3)
    torch.testing.assert_close(qs.step, (2 * xs.abs().mean() / math.sqrt(3)).reshape(1))
    forced = LSQActivationQuantizer(3, signed=False)
    forced.initialize(xs)
    assert not forced.signed and forced.int_range() == (0, 7)
    assert float(forced(xs).detach().min()) == 0.0


def test_state_dict_round_trip_restores_bits_step_and_signedness() -> None:
    torch.manual_seed(0)
    layer = nn.Conv2d(3, 5, 3)
    q = LSQWeightQuantizer(4, layer, per_channel=True)
    q.initialize(layer.weight)
    with torch.no_grad():
        q.step.mul_(torch.linspace(0.5, 2.0, 5))
    q.bits = 3
    fresh = LSQWeightQuantizer(8, layer, per_channel=True)
    fresh.load_state_dict(q.state_dict())
    assert fresh.bits == 3 and bool(fresh.initialized)
    assert torch.equal(fresh.step, q.step)
    fresh.initialize(layer.weight * 100)  # must not re-initialise a restored quantizer
    assert torch.equal(fresh.step, q.step)
    assert torch.equal(fresh.hard(layer.weight), q.hard(layer.weight))

    qa = LSQActivationQuantizer(4)
    x = torch.randn(4, 3, 6, 6)
    qa.initialize(x)
    qa.bits = 2
    fresh_a = LSQActivationQuantizer(8)
    fresh_a.load_state_dict(qa.state_dict())
    assert fresh_a.bits == 2 and fresh_a.signed and torch.equal(fresh_a.step, qa.step)
    assert torch.equal(fresh_a(x), qa(x))


def test_quantized_layers_train_the_step_sizes() -> None:
    """In a QuantConv2d / QuantLinear the steps get gradients and SGD lowers the loss."""
    torch.manual_seed(0)
    conv, lin = nn.Conv2d(3, 8, 3), nn.Linear(8, 4)
    qconv = QuantConv2d.from_float(conv, LSQWeightQuantizer(3, conv), LSQActivationQuantizer(3, conv), "conv")
    qlin = QuantLinear.from_float(lin, LSQWeightQuantizer(3, lin, per_channel=True),
                                  LSQActivationQuantizer(3, lin), "fc")
    model = nn.Sequential(qconv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), qlin)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 4, (16,))
    loss_fn = nn.CrossEntropyLoss()
    first = loss_fn(model(x), y)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    steps0 = [qconv.wq.step.detach().clone(), qlin.aq.step.detach().clone()]
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        assert qconv.wq.step.grad is not None and qlin.aq.step.grad is not None
        opt.step()
    assert loss.item() < first.item()
    assert not torch.equal(qconv.wq.step, steps0[0]) and not torch.equal(qlin.aq.step, steps0[1])
    model.eval()
    with torch.no_grad():
        assert distinct(qlin.hard_weight()[0]) <= 8
