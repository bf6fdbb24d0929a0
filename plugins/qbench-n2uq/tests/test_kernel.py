"""The compiled N2UQ map gives the torch code's numbers bit for bit: forward, input gradient and
boundary gradients, at 1 to 8 bits (the vectorised count and the binary search), with inputs on
and beside every threshold and boundary, outside the range, infinite and NaN."""
from __future__ import annotations

import platform

import pytest
import torch
from qbench_n2uq import kernel
from qbench_n2uq.function import n2uq_levels, segment_boundaries, thresholds_from_boundaries

from qbench.api import KernelFallbackWarning
from qbench.testing import fake_cpu, torch_threads

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="the kernel is built for x86-64 (AVX2) only")


def _inputs(bits: int, numel: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    n = 2**bits - 1
    g = torch.Generator().manual_seed(seed)
    t0 = torch.tensor(-0.3)
    widths = 0.05 + torch.rand(n, generator=g)
    b = segment_boundaries(t0, widths).detach()
    edges = torch.cat([b, thresholds_from_boundaries(b)])
    edges = torch.cat([edges, torch.nextafter(edges, edges + 1), torch.nextafter(edges, edges - 1)])
    x = (torch.randn(numel, generator=g) * float(b[-1] - b[0])) + float(b[0])
    k = min(numel // 3, edges.numel())
    x[torch.randperm(numel, generator=g)[:k]] = edges[:k]
    return x, t0, widths, torch.randn(numel, generator=g)


def _run(x0: torch.Tensor, t0: torch.Tensor, widths: torch.Tensor, go: torch.Tensor) -> list[torch.Tensor]:
    x, t, w = x0.clone().requires_grad_(), t0.clone().requires_grad_(), widths.clone().requires_grad_()
    out = n2uq_levels(x, t, w)
    out.backward(go)
    return [out.detach(), x.grad, t.grad, w.grad]


@pytest.mark.parametrize("bits", [1, 2, 4, 5, 6, 8])
@pytest.mark.parametrize("numel", [1, 63, 65, 4099, 140001])  # 140001: split across threads
def test_kernel_equals_torch_code_bit_for_bit(bits: int, numel: int, monkeypatch: pytest.MonkeyPatch) -> None:
    assert kernel.usable(torch.zeros(1)), "the kernel did not load: reinstall the plugin with gcc"
    x, t0, widths, go = _inputs(bits, numel, seed=bits * 1000 + numel)
    with torch_threads(3):  # the kernel's split path too
        fast = _run(x, t0, widths, go)
    monkeypatch.setattr(kernel, "usable", lambda x: False)
    slow = _run(x, t0, widths, go)
    for a, b in zip(fast, slow):
        assert a is not None and torch.equal(a, b)


def test_infinities_and_nan_follow_the_torch_code(monkeypatch: pytest.MonkeyPatch) -> None:
    x, t0, widths, go = _inputs(2, 20000, seed=7)  # large enough for the torch code's table path
    x[:3] = torch.tensor([float("inf"), float("-inf"), float("nan")])
    with torch_threads(3):  # the kernel's split path too
        fast = _run(x, t0, widths, go)
    monkeypatch.setattr(kernel, "usable", lambda x: False)
    slow = _run(x, t0, widths, go)
    assert fast[0][2] == 0.0 and fast[0][0] == 2.0  # NaN counts no threshold; +inf all of them
    for a, b in zip(fast, slow):
        assert torch.equal(a, b) or torch.equal(a.nan_to_num(), b.nan_to_num())
        assert torch.isnan(a).sum() == torch.isnan(b).sum()


def test_without_the_library_the_torch_code_runs(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    kernel._lib.cache_clear()
    monkeypatch.setattr(kernel, "PACKAGE_DIR", tmp_path)  # a package directory without the built file
    try:
        with fake_cpu("x86-64-v3"), pytest.warns(KernelFallbackWarning, match="not used: no compiled _kernel"):
            assert not kernel.usable(torch.zeros(1))
            x, t0, widths, go = _inputs(2, 100, seed=1)
            out = _run(x, t0, widths, go)
            assert out[0].shape == x.shape and out[3] is not None
    finally:
        monkeypatch.undo()
        kernel._lib.cache_clear()
    assert kernel.usable(torch.zeros(1))


@pytest.mark.parametrize("shape", [(64, 17, 64), (32, 16, 8, 8)])
@pytest.mark.parametrize("bits,signed,rescale", [(2, False, True), (2, True, True), (4, True, True),
                                                  (4, False, False)])
def test_fused_activation_equals_the_composed_expression(shape: tuple[int, ...], bits: int, signed: bool,
                                                         rescale: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """n2uq-a's forward and every gradient (input, scale, t0, widths) through the fused kernel
    equal the composed torch expression's bit for bit."""
    from qbench_n2uq.quantizers import N2UQActivationQuantizer

    g = torch.Generator().manual_seed(bits + len(shape))
    x0 = torch.randn(shape, generator=g) * 2
    if not signed:
        x0 = x0.relu()
    go = torch.randn(shape, generator=g)
    q0 = N2UQActivationQuantizer(bits, signed=signed, rescale_output=rescale)
    q0.initialize(x0)
    with torch.no_grad():  # uneven thresholds, as after some training
        q0.widths_raw[: 2**bits - 1].mul_(0.7 + 0.6 * torch.rand(2**bits - 1, generator=g))
    results, calls = [], []
    real = kernel.act_forward
    monkeypatch.setattr(kernel, "act_forward", lambda *a: calls.append(1) or real(*a))
    for fused in (True, False):
        if not fused:
            assert calls, "the fused kernel did not run"
            monkeypatch.setattr(kernel, "usable", lambda x: False)
        q = N2UQActivationQuantizer(bits, signed=signed, rescale_output=rescale)
        q.load_state_dict(q0.state_dict())
        x = x0.clone().requires_grad_()
        with torch_threads(3):  # the kernel's split path too
            out = q.train()(x)
            out.backward(go)
        results.append([out.detach(), x.grad, q.scale.grad, q.t0.grad, q.widths_raw.grad])
    for a, b in zip(*results):
        assert a is not None and torch.equal(a, b)


def test_on_a_cpu_without_avx2_the_torch_code_runs_with_the_same_bits() -> None:
    """On an x86-64-v2 CPU (no AVX2, FMA, BMI2, ...) the library is not opened: the torch code
    gives the kernel's outputs and gradients (the map, and the fused activation quantizer), and one
    warning, not one per call, says so."""
    from qbench_n2uq.quantizers import N2UQActivationQuantizer

    x, t0, widths, go = _inputs(4, 140001, seed=21)
    a0 = torch.randn(32, 16, 8, 8, generator=torch.Generator().manual_seed(22))

    def both() -> list[torch.Tensor]:
        torch.manual_seed(0)
        aq = N2UQActivationQuantizer(2, signed=True)
        aq.initialize(a0)
        a = a0.clone().requires_grad_()
        aq.train()(a).square().sum().backward()
        return _run(x, t0, widths, go) + [a.grad] + [p.grad for p in aq.parameters()]

    assert kernel.usable(x)
    with torch_threads(3):
        fast = both()
    kernel._lib.cache_clear()
    try:
        with fake_cpu("x86-64-v2"), pytest.warns(KernelFallbackWarning) as record:
            assert not kernel.usable(x)
            slow = both()
    finally:
        kernel._lib.cache_clear()
    said = [str(w.message) for w in record if issubclass(w.category, KernelFallbackWarning)]
    assert len(said) == 1 and said[0].startswith("n2uq-a kernel not used: this CPU lacks AVX, AVX2"), said
    assert said[0].endswith("the torch code runs instead, with the same numbers.")
    assert len(fast) == len(slow) > 5
    for a, b in zip(fast, slow):
        assert a is not None and torch.equal(a, b)
    assert kernel.usable(x)  # the real CPU again
