"""The compiled DGMS soft weight (``_kernel.c``), loaded with ctypes, as an autograd Function.

Why a C kernel: the torch graph of the soft weight materialises several K x N tensors and its
backward recomputes them under autograd, which made a DGMS step 11-12x an FP32 step on resnet18.
The kernel keeps each weight's K values in a small scratch array; forward and backward are one
pass over the weights each.

Why ctypes and not a torch C++ extension: the kernel needs no torch or Python headers, so the
shared library builds in about a second with the plugin (``setup.py``), does not break when torch
is upgraded (no C++ ABI). It runs its blocks on torch's own OpenMP threads (built with -fopenmp, it
links the libgomp torch has already loaded; ``qbench.api.kernel_threads`` says how many).

Determinism: every weight's output and gradient is computed independently of the others, and the
mixture-parameter gradients are summed per block of :data:`BLOCK` weights and then over blocks in
order, so the results do not depend on the number of threads.
"""
from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from qbench.api import KernelUnavailable, kernel_threads, load_kernel, optional_kernel

__all__ = ["FusedSoftWeight", "KernelUnavailable", "available"]


#: Where setup.py puts the built ``_kernel`` library.
PACKAGE_DIR = Path(__file__).parent
#: The x86-64 level setup.py builds the library for (its -march): the host opens it only on a
#: CPU with every feature of that level.
ISA = "x86-64-v3"


def _signatures() -> dict[str, tuple[list[object], object]]:
    f, i64, i32, p = ctypes.c_float, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    return {"qb_dgms_forward": ([i32, i64, p, p, i64, i32, p, p, p, f], _checked),
            "qb_dgms_backward": ([i32, i64, p, p, p, i64, i32, p, p, p, f, p], _checked),
            "qb_dgms_block": ([], i32)}


@lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL:
    """The library for ``kernel='c'``, or :class:`KernelUnavailable` naming the fix: a job keyed
    ``kernel='c'`` never quietly runs the torch graph (its numbers differ in float32 rounding)."""
    return load_kernel(PACKAGE_DIR, "_kernel", "dgms-w kernel='c'", "the weight param kernel='torch'",
                       signatures=_signatures(), isa=ISA)


def _checked(status: int) -> None:
    """restype of the entry points: their int status, turned into an exception."""
    if status != 0:
        raise MemoryError("dgms-w kernel: out of memory for its scratch (a few KB per thread)")


def available() -> bool:
    """True when the compiled kernel loads on this machine; otherwise one warning per process says
    why and that method ``dgms`` plans its torch graph instead (``qbench_dgms.plugin``)."""
    return optional_kernel(PACKAGE_DIR, "_kernel", "dgms-w", _signatures(), isa=ISA,
                           instead="method dgms runs its torch graph instead, planned as the weight param "
                                   "kernel='torch' (a job key of its own)") is not None


def _tables(mu: Tensor, log_sigma: Tensor, log_pi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Contiguous float32 (mu, s = exp(-log sigma), c = log pi - log sigma) on the CPU."""
    as_f = dict(dtype=torch.float32, device="cpu")
    mu = mu.detach().to(**as_f).contiguous()
    s = torch.exp(-log_sigma.detach()).to(**as_f).contiguous()
    c = (log_pi.detach() - log_sigma.detach()).to(**as_f).contiguous()
    return mu, s, c


class FusedSoftWeight(torch.autograd.Function):
    """w~ = sum_k mu_k softmax_k(softmax_k(log-joint) / tau), differentiable in every input.

    Inputs as :class:`qbench_dgms.mixture.ChunkedSoftWeight`: a flat float32 CPU weight, the full
    means table (K,), log sigmas (K,), normalised log mixing weights (K,), tau (scalar tensor).
    """

    @staticmethod
    def forward(ctx, flat: Tensor, mu: Tensor, log_sigma: Tensor, log_pi: Tensor, tau: Tensor) -> Tensor:  # type: ignore[override]
        lib = _lib()
        w = flat.detach().contiguous()
        mu_t, s_t, c_t = _tables(mu, log_sigma, log_pi)
        k, n, inv_tau = mu_t.numel(), w.numel(), float(1.0 / tau.detach())
        out = torch.empty_like(w)
        blocks = -(-n // lib.qb_dgms_block())
        lib.qb_dgms_forward(kernel_threads(blocks, grain=1), blocks, w.data_ptr(), out.data_ptr(), n, k,
                            mu_t.data_ptr(), s_t.data_ptr(), c_t.data_ptr(), inv_tau)
        ctx.save_for_backward(w, mu, log_sigma, log_pi, tau)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        lib = _lib()
        w, mu, log_sigma, log_pi, tau = ctx.saved_tensors
        g = grad_out.detach().to(torch.float32).contiguous()
        mu_t, s_t, c_t = _tables(mu, log_sigma, log_pi)
        k, n, inv_tau = mu_t.numel(), w.numel(), float(1.0 / tau.detach())
        gw = torch.empty_like(w)
        blocks = -(-n // lib.qb_dgms_block())
        partials = np.zeros((blocks, 3 * k + 1), dtype=np.float64)
        lib.qb_dgms_backward(kernel_threads(blocks, grain=1), blocks, w.data_ptr(), g.data_ptr(), gw.data_ptr(), n,
                             k, mu_t.data_ptr(), s_t.data_ptr(), c_t.data_ptr(), inv_tau, partials.ctypes.data)
        sums = torch.from_numpy(partials.sum(axis=0))  # rows in block order: thread-count independent
        g_mu, g_ls, g_lp, g_tau = sums[:k], sums[k:2 * k], sums[2 * k:3 * k], sums[3 * k]
        need = ctx.needs_input_grad
        return (gw if need[0] else None,
                g_mu.to(mu.dtype) if need[1] else None,
                g_ls.to(log_sigma.dtype) if need[2] else None,
                g_lp.to(log_pi.dtype) if need[3] else None,
                g_tau.to(tau.dtype).reshape(tau.shape) if need[4] else None)
