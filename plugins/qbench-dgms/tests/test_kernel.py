"""The compiled soft weight (``kernel='c'``, the default) against the torch graph: the same maths
to float32 accuracy in the output and in every gradient, results independent of the thread
count, a clear error when the library is missing, and method ``dgms`` registered with its torch
graph (``kernel='torch'``, its own job key) where the kernel cannot run."""
from __future__ import annotations

import copy
import platform

import pytest
import torch
from qbench_dgms import DGMSWeightQuantizer, kernel
from qbench_dgms.mixture import _soft_block, full_means, log_mixing

from qbench.api import KernelFallbackWarning
from qbench.testing import fake_cpu, get_catalog, reset_catalog

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="the kernel is built for x86-64 (AVX2) only")


def _mixture(bits: int, n: int, seed: int = 0, tau: float = 0.01) -> tuple[torch.Tensor, DGMSWeightQuantizer]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, generator=g) * 0.05
    q = DGMSWeightQuantizer(bits, None, tau=tau)
    torch.manual_seed(seed)
    q.initialize(w)
    return w, q


def _run(fn, w: torch.Tensor, q: DGMSWeightQuantizer, dtype: torch.dtype) -> list[torch.Tensor]:
    """Output, then the gradients of w, means, log_sigma, pi and log_tau, for a fixed upstream."""
    ww = w.to(dtype).clone().requires_grad_()
    means, ls, pi = (t.detach().to(dtype).clone().requires_grad_() for t in q.components())
    log_tau = q.log_tau.detach().to(dtype).clone().requires_grad_()
    out = fn(ww, full_means(means), ls, log_mixing(pi), log_tau.exp())
    (out * torch.linspace(-1, 1, out.numel(), dtype=dtype)).sum().backward()
    return [out.detach(), ww.grad, means.grad, ls.grad, pi.grad, log_tau.grad]


def _rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("bits,n,tau", [(1, 1, 0.01), (2, 7, 0.01), (4, 4096 + 13, 0.01), (4, 3000, 0.3),
                                        (8, 2000, 0.01)])
def test_kernel_matches_the_torch_graph_to_float32_accuracy(bits: int, n: int, tau: float) -> None:
    """Output and all six gradients, against float64 torch: no further from it than float32 torch
    is (x4, plus 1e-6 of the largest value for float32's rounding), on ragged sizes and every K.
    The log_tau gradient sums terms that cancel to a small remainder, so both float32 versions
    land 1e-4 to 4e-3 from float64 (measured over seeds and K): it is held to 1e-2."""
    w, q = _mixture(bits, n, tau=tau)
    ref = _run(_soft_block, w, q, torch.float64)
    f32 = _run(_soft_block, w, q, torch.float32)
    got = _run(kernel.FusedSoftWeight.apply, w, q, torch.float32)
    names = ["out", "w", "means", "log_sigma", "pi", "log_tau"]
    for name, g, t, r in zip(names, got, f32, ref):
        assert g.shape == r.shape and g.dtype == torch.float32, name
        assert r.abs().max() > 0, name
        floor = 1e-2 if name == "log_tau" else 1e-6
        assert _rel_err(g, r) <= 4 * _rel_err(t, r) + floor, (name, _rel_err(g, r), _rel_err(t, r))


def test_kernel_results_do_not_depend_on_the_thread_count() -> None:
    w, q = _mixture(4, 3 * 4096 + 5)
    threads = torch.get_num_threads()
    try:
        runs = []
        for t in (1, 2, 3):
            torch.set_num_threads(t)
            runs.append(_run(kernel.FusedSoftWeight.apply, w, q, torch.float32))
    finally:
        torch.set_num_threads(threads)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert torch.equal(a, b)


def test_quantizer_uses_the_kernel_by_default() -> None:
    """(What the kernel keeps for the backward: test_mixture.py's saved-tensor test.)"""
    w, _ = _mixture(4, 18432)
    outs = {}
    for name in ("c", "torch"):
        q = DGMSWeightQuantizer(4, None, kernel=name)
        torch.manual_seed(0)
        q.initialize(w)
        outs[name] = q.train()(w)
    assert DGMSWeightQuantizer(4, None).kernel == "c"
    torch.testing.assert_close(outs["c"], outs["torch"], rtol=1e-5, atol=1e-7)


def test_nan_weight_gives_nan_there_and_leaves_the_others_alone() -> None:
    w, q = _mixture(3, 40)
    w[5] = float("nan")
    out = _run(kernel.FusedSoftWeight.apply, w, q, torch.float32)[0]
    assert torch.isnan(out[5]) and torch.isfinite(out[torch.arange(40) != 5]).all()


def test_missing_library_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    kernel._lib.cache_clear()
    monkeypatch.setattr(kernel, "PACKAGE_DIR", tmp_path)  # a package directory without the built file
    try:
        with pytest.raises(kernel.KernelUnavailable, match="kernel='torch'"):
            DGMSWeightQuantizer(2, None).train()(torch.randn(20))
        with fake_cpu("x86-64-v3"), pytest.warns(KernelFallbackWarning, match="dgms-w kernel not used: no compiled"):
            assert not kernel.available()
    finally:
        monkeypatch.undo()
        kernel._lib.cache_clear()
    assert kernel.available()
    with pytest.raises(ValueError, match="kernel must be"):
        DGMSWeightQuantizer(2, None, kernel="cuda")


def _through(q: DGMSWeightQuantizer, w: torch.Tensor, dtype: torch.dtype) -> list[torch.Tensor]:
    """The training forward of a copy of ``q`` in ``dtype``, then the gradients of w, means,
    log_sigma, pi and log_tau, for a fixed upstream."""
    q = copy.deepcopy(q).to(dtype)
    ww = w.to(dtype).clone().requires_grad_()
    out = q.train()(ww)
    (out * torch.linspace(-1, 1, out.numel(), dtype=dtype).view_as(out)).sum().backward()
    return [out.detach(), ww.grad, q.means.grad, q.log_sigma.grad, q.pi.grad, q.log_tau.grad]


def _planned_quantizer(bits: int, w: torch.Tensor) -> tuple[str, DGMSWeightQuantizer]:
    """Method dgms as a fresh catalog registers it on the CPU as it is now, and its quantizer."""
    reset_catalog()
    cat = get_catalog()
    params = cat.methods.get("dgms").part_params("weight")
    q = cat.quantizers.get("dgms-w").factory(bits=bits, layer=None, **params)
    torch.manual_seed(0)
    q.initialize(w)
    return params["kernel"], q


def test_on_a_cpu_without_avx2_dgms_runs_its_torch_graph_under_its_own_key() -> None:
    """An x86-64-v2 CPU (no AVX2, FMA, ...): method dgms is registered with kernel='torch' (one
    warning says so), its quantizer trains through the torch graph, whose output and gradients are
    as close to float64 as the kernel's (the kernel within 4x their error: the README's "Speed"),
    and a quantizer that asks for kernel='c' there fails naming the fix instead of running it."""
    w = torch.randn(64, 8, 3, 3, generator=torch.Generator().manual_seed(1)) * 0.05
    kernel._lib.cache_clear()
    try:
        name_c, q_c = _planned_quantizer(3, w)
        with fake_cpu("x86-64-v2"), pytest.warns(KernelFallbackWarning) as record:
            kernel._lib.cache_clear()
            name_t, q_t = _planned_quantizer(3, w)
            got_t = _through(q_t, w, torch.float32)
            with pytest.raises(kernel.KernelUnavailable, match="this CPU lacks AVX, AVX2.*Fix: use the weight param "
                                                                "kernel='torch'"):
                _through(q_c, w, torch.float32)
    finally:
        kernel._lib.cache_clear()
        reset_catalog()
    said = [str(m.message) for m in record if issubclass(m.category, KernelFallbackWarning)]
    assert len(said) == 1 and said[0].startswith("dgms-w kernel not used: this CPU lacks AVX, AVX2"), said
    assert "torch graph instead, planned as the weight param kernel='torch'" in said[0]
    assert (name_c, name_t, q_c.kernel, q_t.kernel) == ("c", "torch", "c", "torch")
    got_c, ref = _through(q_c, w, torch.float32), _through(q_t, w, torch.float64)
    torch.testing.assert_close(got_c[0], got_t[0], rtol=1e-5, atol=1e-7)
    for name, c, t, r in zip(["out", "w", "means", "log_sigma", "pi", "log_tau"], got_c, got_t, ref):
        assert r.abs().max() > 0, name
        floor = 1e-2 if name == "log_tau" else 1e-6
        assert _rel_err(c, r) <= 4 * _rel_err(t, r) + floor, (name, _rel_err(c, r), _rel_err(t, r))
