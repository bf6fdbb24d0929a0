"""The compiled ASQ quantizer gives the torch code's numbers bit for bit: the forward and the
gradients of x, s and beta, for conv (NCHW) and ViT (B, tokens, C) inputs, signed and unsigned,
at 2, 4 and 8 bits, on half-steps, at and beyond the clip limits, with NaN and infinities, small
and split across threads."""
from __future__ import annotations

import platform

import pytest
import torch
from qbench_asq import kernel
from qbench_asq.asq import asq_quantize

from qbench.api import KernelFallbackWarning
from qbench.testing import fake_cpu, torch_threads

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="the kernel is built for x86-64 (AVX2) only")


def _case(shape: tuple[int, ...], bits: int, signed: bool, seed: int
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = torch.tensor(0.05)
    beta = 0.5 + torch.rand(shape[0], generator=g)
    x = torch.randn(shape, generator=g) * 0.05 * 2**bits
    if not signed:
        x = x.abs()
    flat = x.view(-1)
    step = (s * beta).repeat_interleave(x[0].numel())
    k = torch.randint(-(2**bits), 2**bits, (flat.numel(),), generator=g).float()
    pick = torch.rand(flat.numel(), generator=g)
    flat[pick < 0.2] = ((k + 0.5) * step)[pick < 0.2]  # half-steps
    flat[(pick >= 0.2) & (pick < 0.3)] = (k * step)[(pick >= 0.2) & (pick < 0.3)]  # levels and limits
    flat[:3] = torch.tensor([float("nan"), float("inf"), float("-inf")])
    return x, s, beta, torch.randn(shape, generator=g)


def _run(x0: torch.Tensor, s0: torch.Tensor, b0: torch.Tensor, go: torch.Tensor, bits: int, signed: bool
         ) -> list[torch.Tensor]:
    x, s, beta = x0.clone().requires_grad_(), s0.clone().requires_grad_(), b0.clone().requires_grad_()
    out = asq_quantize(x, s, beta, bits, signed)
    out.backward(go)
    return [out.detach(), x.grad, s.grad, beta.grad]


@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (64, 17, 64), (64, 64, 16, 16)])
@pytest.mark.parametrize("bits,signed", [(2, False), (2, True), (4, True), (8, False)])
def test_kernel_equals_torch_code_bit_for_bit(shape: tuple[int, ...], bits: int, signed: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    x, s, beta, go = _case(shape, bits, signed, seed=bits + sum(shape))
    assert kernel.usable(x, s * beta), "the kernel did not load: reinstall the plugin with gcc"
    with torch_threads(3):  # the kernel's split path too
        fast = _run(x, s, beta, go, bits, signed)
    monkeypatch.setattr(kernel, "usable", lambda x, sa: False)
    slow = _run(x, s, beta, go, bits, signed)
    for a, b in zip(fast, slow):
        assert a.shape == b.shape
        assert torch.equal(a.nan_to_num(), b.nan_to_num()) and torch.equal(a.isnan(), b.isnan())


def test_without_the_library_the_torch_code_runs(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    kernel._lib.cache_clear()
    monkeypatch.setattr(kernel, "PACKAGE_DIR", tmp_path)  # a package directory without the built file
    try:
        with fake_cpu("x86-64-v3"), pytest.warns(KernelFallbackWarning, match="not used: no compiled _kernel"):
            x, s, beta, go = _case((4, 8), 2, True, seed=1)
            assert not kernel.usable(x, s * beta)
            assert _run(x, s, beta, go, 2, True)[3].shape == beta.shape
    finally:
        monkeypatch.undo()
        kernel._lib.cache_clear()


def test_a_traced_graph_computes_the_quantizer_not_a_stale_buffer() -> None:
    """Under torch.jit.trace (what ONNX export runs) the kernel is opaque: the torch code must run,
    so the traced graph recomputes the quantizer on new input."""
    x, s, beta, _ = _case((4, 3, 5, 5), 2, True, seed=2)
    x = x.nan_to_num(0.0, 1.0, -1.0)
    traced = torch.jit.trace(lambda t: asq_quantize(t, s, beta, 2, True), (x,))
    other = x.flip(0).contiguous()
    assert torch.equal(traced(other), asq_quantize(other, s, beta, 2, True))


def test_on_a_cpu_without_avx2_the_torch_code_runs_with_the_same_bits() -> None:
    """On an x86-64-v2 CPU (no AVX2, FMA, BMI2, ...) the library is not opened: the torch code
    gives the kernel's outputs and gradients, and one warning, not one per call, says so."""
    cases = [(_case((64, 17, 64), 2, True, seed=21), 2, True), (_case((4, 3, 5, 5), 8, False, seed=22), 8, False)]
    assert all(kernel.usable(x, s * beta) for (x, s, beta, _), _, _ in cases)
    with torch_threads(3):
        fast = [_run(x, s, beta, go, bits, signed) for (x, s, beta, go), bits, signed in cases]
    kernel._lib.cache_clear()
    try:
        with fake_cpu("x86-64-v2"), pytest.warns(KernelFallbackWarning) as record:
            assert not any(kernel.usable(x, s * beta) for (x, s, beta, _), _, _ in cases)
            slow = [_run(x, s, beta, go, bits, signed) for (x, s, beta, go), bits, signed in cases]
    finally:
        kernel._lib.cache_clear()
    said = [str(w.message) for w in record if issubclass(w.category, KernelFallbackWarning)]
    assert len(said) == 1 and said[0].startswith("asq-a kernel not used: this CPU lacks AVX, AVX2"), said
    assert said[0].endswith("the torch code runs instead, with the same numbers.")
    for f, sl in zip(fast, slow):
        for a, b in zip(f, sl):
            assert torch.equal(a.nan_to_num(), b.nan_to_num()) and torch.equal(a.isnan(), b.isnan())
    x, s, beta, _ = cases[0][0]
    assert kernel.usable(x, s * beta)  # the real CPU again
