"""Defining properties of ADQ's weight quantizer ``adq-w``."""
from __future__ import annotations

import torch
from qbench_adq import ADQWeightQuantizer
from torch import nn


def _weights(seed: int = 0, shape=(16, 8, 3, 3)) -> torch.Tensor:
    torch.manual_seed(seed)
    w = torch.randn(shape) * 0.1
    return w + 0.02 * torch.randn(shape).abs()  # a skewed distribution: more positive weights


def _expected_codebook(w: torch.Tensor, n_neg: int, n_pos: int, zero: bool = True) -> torch.Tensor:
    pos, neg = w[w > 0], -w[w < 0]
    p_neg = (torch.arange(1, n_neg + 1) - 0.5) / n_neg
    p_pos = (torch.arange(1, n_pos + 1) - 0.5) / n_pos
    parts = [-torch.quantile(neg, p_neg).flip(0)]
    if zero:
        parts.append(torch.zeros(1))
    parts.append(torch.quantile(pos, p_pos))
    return torch.cat(parts)


def test_initial_codebook_is_the_quantiles_of_each_sign():
    w = _weights()
    for bits in (2, 3, 4):
        q = ADQWeightQuantizer(bits, None)
        q.initialize(w)
        side = 2 ** (bits - 1) - 1
        assert q.codebook.numel() == 2**bits - 1
        assert torch.allclose(q.codebook, _expected_codebook(w, side, side), atol=1e-7)
        assert int(q.zero_index) == side and float(q.codebook[side]) == 0.0


def test_asymmetric_split_uses_2_pow_b_levels_in_proportion_to_sign_counts():
    w = _weights(1)
    q = ADQWeightQuantizer(3, None, split="asymmetric")
    q.initialize(w)
    n_pos_w, n_neg_w = int((w > 0).sum()), int((w < 0).sum())
    n_pos = round(7 * n_pos_w / (n_pos_w + n_neg_w))
    assert n_pos > 7 - n_pos  # the skew gives the positive side more levels
    assert q.codebook.numel() == 8
    assert torch.allclose(q.codebook, _expected_codebook(w, 7 - n_pos, n_pos), atol=1e-7)


def test_one_ema_step_moves_each_codeword_by_the_momentum_toward_its_cell_mean():
    w = _weights(2)
    m = 0.9
    q = ADQWeightQuantizer(3, None, momentum=m)
    q.initialize(w)
    with torch.no_grad():
        q.codebook[-1] = 5.0  # far away: no weight is assigned to it
    old = q.codebook.clone()
    q.train()
    out = q(w)
    idx = (w.reshape(-1, 1) - old.reshape(1, -1)).abs().argmin(1)  # independent nearest codeword
    assert torch.equal(out.reshape(-1), old[idx])  # this forward used the pre-update codebook
    expected = old.clone()
    for k in range(old.numel()):
        cell = w.reshape(-1)[idx == k]
        if cell.numel() and k != int(q.zero_index):
            expected[k] = m * old[k] + (1 - m) * cell.mean()
    assert torch.allclose(q.codebook, expected, atol=1e-7)
    assert float(q.codebook[int(q.zero_index)]) == 0.0  # 0 is fixed
    assert float(q.codebook[-1]) == 5.0  # unassigned codeword did not move
    assert not torch.allclose(q.codebook[:-1], old[:-1])  # the others did


def test_eval_does_not_adapt_and_hard_weight_has_at_most_2_pow_b_values():
    w = _weights(3)
    for bits, split in ((2, "symmetric"), (3, "symmetric"), (2, "asymmetric"), (4, "asymmetric")):
        q = ADQWeightQuantizer(bits, None, split=split)
        q.initialize(w)
        before = q.codebook.clone()
        hard = q.hard(w)
        q.train()
        with torch.no_grad():  # a probe forward in training mode does not adapt either
            q(w)
        assert torch.equal(q.codebook, before)
        assert torch.unique(hard).numel() <= 2**bits
        q.train()
        for _ in range(5):
            q(w + 0.01 * torch.randn_like(w))
        assert torch.unique(q.hard(w)).numel() <= 2**bits


def test_straight_through_gradient_to_the_weight():
    w = _weights(4).requires_grad_()
    q = ADQWeightQuantizer(2, None)
    q.initialize(w)
    g = torch.randn_like(w)
    (q(w) * g).sum().backward()
    assert torch.equal(w.grad, g)


def test_bits_change_reinitialises_from_current_weight():
    w = _weights(5)
    q = ADQWeightQuantizer(2, None)
    q.initialize(w)
    w2 = w * 1.5
    q.bits = 3
    q.eval()
    q(w2)
    assert q.codebook.numel() == 7 and int(q.codebook_bits) == 3
    assert torch.allclose(q.codebook, _expected_codebook(w2, 3, 3), atol=1e-7)


def test_state_dict_round_trip_resizes_the_codebook():
    w = _weights(6)
    q = ADQWeightQuantizer(4, nn.Linear(2, 2))
    q.initialize(w)
    fresh = ADQWeightQuantizer(4, nn.Linear(2, 2))
    fresh.load_state_dict(q.state_dict())
    assert torch.equal(fresh.codebook, q.codebook) and bool(fresh.initialized)
    assert torch.equal(fresh.hard(w), q.hard(w))
    exp = q.export(w)
    assert torch.equal(exp["codebook"][exp["codes"].long()], exp["weight"])
