"""The quantizer plumbing the host shares with plugins: calibration search and level projection."""
from __future__ import annotations

import pytest
import torch

from qbench.contract.quant.calibration import CALIBRATION_VALUES, calibration_sample, clip_grid, mse_search
from qbench.contract.quant.levels import nearest_level_index, project_nearest, project_ste
from qbench.contract.quant.ste import features_per_sample


def test_calibration_sample_is_seeded_bounded_and_draws_from_no_shared_stream() -> None:
    x = torch.arange(200_001, dtype=torch.float64).reshape(1, -1)
    state = torch.random.get_rng_state()
    s = calibration_sample(x)
    assert torch.equal(torch.random.get_rng_state(), state)  # the job's random stream is untouched
    assert s.dtype == torch.float32 and s.dim() == 1 and s.numel() == CALIBRATION_VALUES
    assert torch.equal(s, calibration_sample(x))  # the same on every run
    assert not torch.equal(s, calibration_sample(x, seed=1))
    assert set(s.tolist()) <= set(range(200_001))  # values of x, nothing invented
    small = torch.randn(3, 5)
    assert torch.equal(calibration_sample(small), small.reshape(-1))  # small batches are used whole
    with pytest.raises(ValueError, match="limit"):
        calibration_sample(x, limit=0)


def test_calibration_sample_does_not_alias_with_the_channel_layout() -> None:
    # (batch, tokens, channels) with a stride-friendly width: a stride of 2 would keep only even
    # channels; the random sample covers every channel about equally.
    x = torch.arange(64).float().expand(128, 17, 64).contiguous()  # value = channel index
    s = calibration_sample(x, limit=x.numel() // 2)
    counts = torch.bincount(s.long(), minlength=64).float()
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()


def _uniform(x: torch.Tensor, c: torch.Tensor, levels: int = 4) -> torch.Tensor:
    step = c / (levels - 1)
    return torch.round(torch.clamp(x, 0, c) / step) * step


def test_mse_search_finds_the_clip_that_reconstructs_a_grid_exactly() -> None:
    x = torch.tensor([0.0, 0.5, 1.0, 1.5] * 10)  # a 2-bit grid with step 0.5: clip 1.5 is lossless
    cands = clip_grid(3.0, 20)  # 0.15, 0.30, ..., 3.0 holds 1.5
    assert mse_search(x, _uniform, cands) == pytest.approx(1.5)
    # a lower candidate with a larger error never wins; equal errors keep the first candidate
    assert mse_search(x, _uniform, [0.3, 1.5, 1.5000001, 4.5]) == pytest.approx(1.5)
    assert mse_search(torch.zeros(8), _uniform, [1.0, 2.0]) == 1.0
    with pytest.raises(ValueError, match="no candidates"):
        mse_search(x, _uniform, [])


def test_clip_grid_spans_the_open_low_end_to_top() -> None:
    g = clip_grid(2.0, 100)
    assert g.numel() == 100 and g[0].item() == pytest.approx(0.02) and g[-1].item() == pytest.approx(2.0)
    assert clip_grid(1.0, 3, low=0.5).tolist() == pytest.approx([0.5, 0.75, 1.0])


def test_nearest_level_index_equals_brute_force_argmin_ties_to_the_lower_level() -> None:
    gen = torch.Generator().manual_seed(0)
    levels = torch.sort(torch.randn(9, generator=gen))[0]
    u = torch.randn(4, 500, generator=gen) * 2
    brute = (u[..., None] - levels).abs().argmin(-1)  # argmin keeps the first (lower) on ties
    idx = nearest_level_index(u, levels)
    assert idx.shape == u.shape and torch.equal(idx, brute)
    lv = torch.tensor([0.0, 1.0, 3.0])
    assert nearest_level_index(torch.tensor([0.5, 2.0, 2.01]), lv).tolist() == [0, 1, 2]
    assert torch.equal(project_nearest(u, levels), levels[brute])


def test_project_ste_is_the_projection_forward_and_identity_backward() -> None:
    levels = torch.tensor([-1.0, 0.0, 0.25, 1.0])
    u = torch.tensor([-0.7, 0.1, 0.2, 0.9], requires_grad=True)
    y = project_ste(u, levels)
    assert y.tolist() == [-1.0, 0.0, 0.25, 1.0]
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert u.grad.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_features_per_sample() -> None:
    assert features_per_sample(torch.zeros(8, 3, 4, 4)) == 48
    assert features_per_sample(torch.zeros(8, 17, 64)) == 17 * 64
    assert features_per_sample(torch.zeros(5)) == 5
