"""The compiled RCF gives the composed torch expression's numbers bit for bit: the forward and the
gradients of x and alpha, for signed (weights) and unsigned (activations) APoT levels at 2 to 8
bits, on levels, on midpoints between them (ties go to the lower level), at and beyond the clip
limits, with NaN and infinities, small (bucketize) and large (the host's grid look-up), split
across threads; and through the quantizer modules, weight normalisation included."""
from __future__ import annotations

import platform

import pytest
import torch
from qbench_apot import kernel
from qbench_apot.levels import apot_levels
from qbench_apot.quantizers import ApotActQuantizer, ApotWeightQuantizer
from qbench_apot.rcf import rcf_quantize

from qbench.api import KernelFallbackWarning
from qbench.testing import fake_cpu, torch_threads

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="the kernel is built for x86-64 (AVX2) only")


def _levels(bits: int, signed: bool) -> torch.Tensor:
    return apot_levels(bits - 1, signed=True) if signed else apot_levels(bits, signed=False)


def _case(numel: int, bits: int, signed: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    alpha = torch.tensor(0.7 + torch.rand((), generator=g).item())
    levels = _levels(bits, signed)
    x = torch.randn(numel, generator=g) * alpha
    if not signed:
        x = x.abs()
    mids = (levels[1:] + levels[:-1]) / 2
    pick = torch.rand(numel, generator=g)
    on_mid = mids[torch.randint(0, mids.numel(), (numel,), generator=g)] * alpha
    on_level = levels[torch.randint(0, levels.numel(), (numel,), generator=g)] * alpha
    x = torch.where(pick < 0.2, on_mid, torch.where(pick < 0.3, on_level, x))  # ties and exact levels
    if numel > 8:
        x[:6] = torch.tensor([float("nan"), float("inf"), float("-inf"), float(alpha), -float(alpha), 0.0])
    return x, alpha, levels


def _run(x0: torch.Tensor, a0: torch.Tensor, levels: torch.Tensor, signed: bool, go: torch.Tensor
         ) -> list[torch.Tensor]:
    x, alpha = x0.clone().requires_grad_(), a0.clone().requires_grad_()
    out = rcf_quantize(x, alpha, levels, signed)
    out.backward(go)
    return [out.detach(), x.grad, alpha.grad]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.nan_to_num(), b.nan_to_num()) and torch.equal(a.isnan(), b.isnan())


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("numel", [7, 4099, 70001])  # 70001: the host's grid look-up, and 3 threads
def test_kernel_equals_the_composed_expression_bit_for_bit(bits: int, signed: bool, numel: int,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    x, alpha, levels = _case(numel, bits, signed, seed=bits * 100 + numel)
    assert kernel.usable(x, alpha, levels), "the kernel did not load: reinstall the plugin with gcc"
    go = torch.randn(numel, generator=torch.Generator().manual_seed(numel))
    with torch_threads(3):  # the kernel's split path too
        fast = _run(x, alpha, levels, signed, go)
    monkeypatch.setattr(kernel, "usable", lambda *a: False)
    slow = _run(x, alpha, levels, signed, go)
    assert all(_same(a, b) for a, b in zip(fast, slow))


@pytest.mark.parametrize("signed", [False, True])
def test_the_quantizer_modules_equal_the_composed_expression(signed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Weights (normalised, rescaled by std) and activations, every parameter's gradient."""
    g = torch.Generator().manual_seed(3)
    w0, x0 = torch.randn(64, 32, 3, 3, generator=g), torch.randn(64, 17, 64, generator=g)
    if not signed:
        x0 = x0.relu()
    results = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(kernel, "usable", lambda *a: False)
        torch.manual_seed(0)
        wq, aq = ApotWeightQuantizer(4), ApotActQuantizer(4, signed=signed)
        wq.initialize(w0)
        aq.initialize(x0)
        w, x = w0.clone().requires_grad_(), x0.clone().requires_grad_()
        loss = (wq.train()(w) * 1.5).sum() + (aq.train()(x) ** 2).sum()
        loss.backward()
        results.append([wq(w0).detach(), aq(x0).detach(), w.grad, x.grad, wq.alpha.grad, aq.alpha.grad])
    assert all(_same(a, b) for a, b in zip(*results))


def test_without_the_library_the_torch_code_runs(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    kernel._lib.cache_clear()
    monkeypatch.setattr(kernel, "PACKAGE_DIR", tmp_path)  # a package directory without the built file
    try:
        with fake_cpu("x86-64-v3"), pytest.warns(KernelFallbackWarning, match="not used: no compiled _kernel"):
            x, alpha, levels = _case(20, 3, True, seed=1)
            assert not kernel.usable(x, alpha, levels)
            assert _run(x, alpha, levels, True, torch.ones(20))[2].shape == alpha.shape
    finally:
        monkeypatch.undo()
        kernel._lib.cache_clear()


def test_a_traced_graph_computes_the_quantizer_not_a_stale_buffer() -> None:
    """Under torch.jit.trace (what ONNX export runs) the kernel is opaque: the torch code must run,
    so the traced graph recomputes the quantizer on new input."""
    x, alpha, levels = _case(4099, 4, False, seed=2)
    x = x.nan_to_num(0.0, 1.0, -1.0)
    traced = torch.jit.trace(lambda t: rcf_quantize(t, alpha, levels, False), (x,))
    other = x.flip(0).contiguous() * 0.5
    assert torch.equal(traced(other), rcf_quantize(other, alpha, levels, False))


def test_on_a_cpu_without_avx2_the_torch_code_runs_with_the_same_bits() -> None:
    """On an x86-64-v2 CPU (no AVX2, FMA, BMI2, ...) the library is not opened: the composed torch
    expression gives the kernel's outputs and gradients, and one warning, not one per call, says so."""
    cases = [(_case(70001, 4, True, seed=21), True), (_case(4099, 3, False, seed=22), False)]
    gos = [torch.randn(x.numel(), generator=torch.Generator().manual_seed(i)) for i, ((x, _, _), _) in enumerate(cases)]
    assert all(kernel.usable(x, alpha, levels) for (x, alpha, levels), _ in cases)
    with torch_threads(3):
        fast = [_run(x, alpha, levels, signed, go) for ((x, alpha, levels), signed), go in zip(cases, gos)]
    kernel._lib.cache_clear()
    try:
        with fake_cpu("x86-64-v2"), pytest.warns(KernelFallbackWarning) as record:
            assert not any(kernel.usable(x, alpha, levels) for (x, alpha, levels), _ in cases)
            slow = [_run(x, alpha, levels, signed, go) for ((x, alpha, levels), signed), go in zip(cases, gos)]
    finally:
        kernel._lib.cache_clear()
    said = [str(w.message) for w in record if issubclass(w.category, KernelFallbackWarning)]
    assert len(said) == 1 and said[0].startswith("apot kernel not used: this CPU lacks AVX, AVX2"), said
    assert said[0].endswith("the torch code runs instead, with the same numbers.")
    for f, sl in zip(fast, slow):
        assert all(_same(a, b) for a, b in zip(f, sl))
    assert kernel.usable(*cases[0][0])  # the real CPU again
