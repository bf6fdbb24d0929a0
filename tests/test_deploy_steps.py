"""The deploy step-function check counts thresholds by binary search (faster); the same levels as
the all-pairs comparison it replaced, on values at and beside every threshold."""
from __future__ import annotations

import pytest
import torch

from qbench.deploy.steps import steps


@pytest.mark.parametrize("k", [1, 2, 5, 16, 255])
def test_steps_equal_all_pairs_count(k: int) -> None:
    g = torch.Generator().manual_seed(k)
    th = torch.sort(torch.randn(k, generator=g))[0]
    levels = torch.randn(k + 1, generator=g)
    x = torch.cat([torch.randn(10000, generator=g), th, torch.nextafter(th, th - 1), torch.nextafter(th, th + 1),
                   torch.tensor([float("inf"), -float("inf")])])
    for t in (x, x[:9000].reshape(30, 300)):
        assert torch.equal(steps(t, th, levels), levels[(t.unsqueeze(-1) >= th).sum(-1)])


class _PerChannelThresholds(torch.nn.Module):
    """An elementwise step function whose thresholds differ per channel (dim 1) and per position:
    the bisection must probe each value where the probe batch had it."""

    bits = 3

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.shift = 0.05 * torch.randn(shape[1:], generator=g)  # fixed per (channel, position)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.floor((x + self.shift) * 1.7), -3, 3) * 0.4


@pytest.mark.parametrize("shape", [(64, 17, 8), (32, 3), (256, 4, 3, 3)])
def test_bisection_on_a_small_probe_equals_the_full_batch_probe(shape: tuple[int, ...],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The bisection probes only the samples its values need (a faster export): the same
    thresholds and levels, bit for bit, as probing the whole batch, even for a quantizer whose
    thresholds depend on the position (which the final check then rejects or accepts alike)."""
    import qbench.deploy.steps as steps_mod

    aq = _PerChannelThresholds(shape)
    xs = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    ramp = torch.linspace(-4, 4, xs.numel()).reshape(shape)
    args = (aq, xs, ramp, aq(ramp), aq(xs))
    small = steps_mod.step_function(*args)
    assert steps_mod._probe_shape(xs.shape, 7)[0] < shape[0]
    monkeypatch.setattr(steps_mod, "_probe_shape", lambda s, n: s)
    full = steps_mod.step_function(*args)
    if isinstance(full, str):
        assert small == full
    else:
        assert all(torch.equal(a, b) for a, b in zip(small, full))


def test_probe_shape_holds_every_value_in_the_fewest_samples() -> None:
    from qbench.deploy.steps import _probe_shape

    assert _probe_shape(torch.Size((256, 17, 64)), 255) == (1, 17, 64)
    assert _probe_shape(torch.Size((256, 3)), 255) == (85, 3)
    assert _probe_shape(torch.Size((4, 3)), 255) == (4, 3)  # never more than the batch
    assert _probe_shape(torch.Size((10,)), 5) == (10,)
