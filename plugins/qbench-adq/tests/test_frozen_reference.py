"""Faster ADQ weights, same numbers: forward, codebook updates and gradients bit for bit those of
the quantizer frozen before the speed-ups (frozen_quantizers.py), over a few training steps."""
from __future__ import annotations

import pytest
import torch
from qbench_adq.quantizers import ADQWeightQuantizer

from qbench.testing import sibling_module

frozen = sibling_module(__file__, "frozen_quantizers")


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("split", ["symmetric", "asymmetric"])
def test_adq_weight_unchanged(bits: int, split: str) -> None:
    g = torch.Generator().manual_seed(bits)
    w0 = 0.05 * torch.randn(64, 32, 3, 3, generator=g)
    new, old = ADQWeightQuantizer(bits, None, split=split), frozen.ADQWeightQuantizer(bits, None, split=split)
    new.initialize(w0)
    old.initialize(w0)
    for step in range(3):  # the EMA moves the codebook: later steps see the updated one
        w_step = w0 + 0.01 * step * torch.randn(w0.shape, generator=g)
        go = torch.randn(w0.shape, generator=g)
        results = []
        for q in (old, new):
            w = w_step.clone().requires_grad_()
            out = q(w)
            out.backward(go)
            results.append((out.detach(), w.grad, q.codebook.clone()))
        for a, b in zip(*results):
            assert torch.equal(a, b)


frozen_codebook = sibling_module(__file__, "frozen_codebook")


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("probs", ["bin-mean", "midpoint", "uniform"])
@pytest.mark.parametrize("split", ["symmetric", "asymmetric"])
def test_codebook_init_unchanged(bits: int, probs: str, split: str) -> None:
    from qbench_adq.codebook import init_codebook

    g = torch.Generator().manual_seed(bits)
    w = 0.05 * torch.randn(20000, generator=g)
    w[:300] = 0.0
    new, old = init_codebook(w, bits, split, probs), frozen_codebook.init_codebook(w, bits, split, probs)
    assert torch.equal(new[0], old[0]) and new[1] == old[1]
