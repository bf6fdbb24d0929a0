"""Faster POST weights, same numbers: forward bit for bit and gradients equal to the code frozen
before the speed-ups (frozen_post.py)."""
from __future__ import annotations

import pytest
import torch
from qbench_asq.post import POSTWeightQuantizer
from torch import nn

from qbench.testing import sibling_module

frozen_post = sibling_module(__file__, "frozen_post")


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("shape", [(64, 32, 3, 3), (8, 4, 3, 3), (96, 64)])
def test_post_forward_identical_gradients_close(bits: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(bits)
    layer = nn.Conv2d(shape[1], shape[0], 3) if len(shape) == 4 else nn.Linear(shape[1], shape[0])
    new, old = POSTWeightQuantizer(bits, layer), frozen_post.POSTWeightQuantizer(bits, layer)
    new.initialize(layer.weight)
    old.load_state_dict(new.state_dict())
    go = torch.randn(shape)
    results = []
    for q in (old, new):
        w = layer.weight.detach().clone().requires_grad_()
        q.alpha.grad = None
        out = q(w)
        out.backward(go)
        results.append((out.detach(), w.grad, q.alpha.grad))
    assert torch.equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1:], results[1][1:]):
        torch.testing.assert_close(b, a)
    assert torch.equal(new.hard(layer.weight), old.hard(layer.weight))
