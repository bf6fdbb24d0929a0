"""The compiled LSQ quantizer gives the torch code's numbers bit for bit: the forward, the input
gradient and the step's gradient, per tensor and per channel, at 2, 4 and 8 bits, signed and
unsigned, on half-steps, at and beyond the clip limits, with NaN, infinities and a step below
eps, on small tensors and on tensors large enough to be split across threads."""
from __future__ import annotations

import platform

import pytest
import torch
from qbench_lsq import kernel
from qbench_lsq.function import lsq_quantize

from qbench.api import KernelFallbackWarning
from qbench.testing import fake_cpu, torch_threads

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="the kernel is built for x86-64 (AVX2) only")


def _case(shape: tuple[int, ...], per_channel: bool, q_n: int, q_p: int, seed: int
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = (0.01 + torch.rand(shape[0] if per_channel else 1, generator=g) * 0.1)
    if per_channel:
        s = s.view(-1, *([1] * (len(shape) - 1)))
    x = torch.randn(shape, generator=g) * 0.1 * (q_n + q_p)
    flat, step = x.view(-1), s.expand_as(x).reshape(-1)
    k = torch.randint(-q_n - 2, q_p + 2, (flat.numel(),), generator=g).float()
    pick = torch.rand(flat.numel(), generator=g)
    flat[pick < 0.2] = ((k + 0.5) * step)[pick < 0.2]  # exact half-steps: round half to even
    flat[(pick >= 0.2) & (pick < 0.3)] = (k * step)[(pick >= 0.2) & (pick < 0.3)]  # on levels and limits
    if flat.numel() > 8:
        flat[:4] = torch.tensor([float("nan"), float("inf"), float("-inf"), 0.0])
    return x, s, torch.randn(shape, generator=g)


def _run(x0: torch.Tensor, s0: torch.Tensor, go: torch.Tensor, q_n: int, q_p: int) -> list[torch.Tensor]:
    x, s = x0.clone().requires_grad_(), s0.clone().requires_grad_()
    out = lsq_quantize(x, s, q_n, q_p, g=0.37)
    out.backward(go)
    return [out.detach(), x.grad, s.grad]


@pytest.mark.parametrize("shape,per_channel", [((7,), False), ((64, 17, 32), False), ((16, 8, 3, 3), True),
                                                ((48, 40), True), ((256, 64, 3, 3), True), ((64, 64, 8, 8), False)])
@pytest.mark.parametrize("q_n,q_p", [(2, 1), (0, 15), (128, 127)])
def test_kernel_equals_torch_code_bit_for_bit(shape: tuple[int, ...], per_channel: bool, q_n: int, q_p: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    x, s, go = _case(shape, per_channel, q_n, q_p, seed=sum(shape) + q_p)
    assert kernel.usable(x, s), "the kernel did not load: reinstall the plugin with gcc"
    with torch_threads(3):  # the kernel's split path too
        fast = _run(x, s, go, q_n, q_p)
    monkeypatch.setattr(kernel, "usable", lambda x, s: False)
    slow = _run(x, s, go, q_n, q_p)
    for a, b in zip(fast, slow):
        assert a.shape == b.shape
        assert torch.equal(a.nan_to_num(), b.nan_to_num()) and torch.equal(a.isnan(), b.isnan())


def test_a_step_below_eps_and_other_broadcasts(monkeypatch: pytest.MonkeyPatch) -> None:
    x, _, go = _case((32, 10), False, 2, 1, seed=3)
    tiny, negative = torch.tensor([1e-12]), torch.tensor([-0.3])  # the kernel applies max(s, eps)
    channels = torch.tensor([0.05, float("nan"), 0.0, 1e-9] * 8).view(32, 1)  # NaN stays NaN
    other = torch.full((1, 10), 0.05)  # a step per column: not a leading channel, so torch answers
    assert kernel.usable(x, tiny) and kernel.usable(x, channels) and not kernel.usable(x, other)
    steps = (tiny, negative, channels, other)
    fast = [_run(x, s, go, 2, 1) for s in steps]
    monkeypatch.setattr(kernel, "usable", lambda x, s: False)
    slow = [_run(x, s, go, 2, 1) for s in steps]
    for f, sl in zip(fast, slow):
        for a, b in zip(f, sl):
            assert torch.equal(a.nan_to_num(), b.nan_to_num()) and torch.equal(a.isnan(), b.isnan())


def test_without_the_library_the_torch_code_runs(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    kernel._lib.cache_clear()
    monkeypatch.setattr(kernel, "PACKAGE_DIR", tmp_path)  # a package directory without the built file
    try:
        with fake_cpu("x86-64-v3"), pytest.warns(KernelFallbackWarning, match="not used: no compiled _kernel"):
            x, s, go = _case((8, 4), True, 2, 1, seed=5)
            assert not kernel.usable(x, s)
            assert _run(x, s, go, 2, 1)[2].shape == s.shape
    finally:
        monkeypatch.undo()
        kernel._lib.cache_clear()


def test_on_a_cpu_without_avx2_the_torch_code_runs_with_the_same_bits() -> None:
    """On an x86-64-v2 CPU (no AVX2, FMA, BMI2, ...) the library is not opened: the torch code
    gives the kernel's outputs and gradients, and one warning, not one per call, says so."""
    cases = [(_case((64, 17, 32), False, 2, 1, seed=21), 2, 1),
             (_case((256, 64, 3, 3), True, 128, 127, seed=22), 128, 127)]
    assert all(kernel.usable(x, s) for (x, s, _), _, _ in cases)
    with torch_threads(3):
        fast = [_run(x, s, go, q_n, q_p) for (x, s, go), q_n, q_p in cases]
    kernel._lib.cache_clear()
    try:
        with fake_cpu("x86-64-v2"), pytest.warns(KernelFallbackWarning) as record:
            assert not any(kernel.usable(x, s) for (x, s, _), _, _ in cases)
            slow = [_run(x, s, go, q_n, q_p) for (x, s, go), q_n, q_p in cases]
    finally:
        kernel._lib.cache_clear()
    said = [str(w.message) for w in record if issubclass(w.category, KernelFallbackWarning)]
    assert len(said) == 1 and said[0].startswith("lsq kernel not used: this CPU lacks AVX, AVX2"), said
    assert said[0].endswith("the torch code runs instead, with the same numbers.")
    for f, sl in zip(fast, slow):
        for a, b in zip(f, sl):
            assert torch.equal(a.nan_to_num(), b.nan_to_num()) and torch.equal(a.isnan(), b.isnan())
    assert kernel.usable(*cases[0][0][:2])  # the real CPU again
