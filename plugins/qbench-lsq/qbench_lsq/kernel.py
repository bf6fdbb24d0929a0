"""The compiled LSQ quantizer (``_kernel.c``) through ctypes: the same numbers as the torch code.

:class:`qbench_lsq.function._LSQQuantize` uses it for contiguous float32 CPU tensors with a step
per tensor or per leading channel whenever the library loads on a CPU with its build's
instructions (:data:`ISA`); otherwise the torch code runs, and one warning per process says so.
Both give the same bits (``tests/test_kernel.py``), so which one ran is not part of a job's key.
The kernel splits a tensor over torch's OpenMP threads itself (``qbench.api.kernel_threads``;
every element is independent, so the split changes nothing).
"""
from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from qbench.api import kernel_threads, optional_kernel, tracing

#: Where setup.py puts the built ``_kernel`` library.
PACKAGE_DIR = Path(__file__).parent
#: The x86-64 level setup.py builds the library for (its -march): the host opens it only on a
#: CPU with every feature of that level; elsewhere the torch code runs.
ISA = "x86-64-v3"


@lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL | None:
    """The library, or None (the torch code then runs; nothing else changes)."""
    i32, i64, p, f = ctypes.c_int, ctypes.c_int64, ctypes.c_void_p, ctypes.c_float
    return optional_kernel(PACKAGE_DIR, "_kernel", "lsq", {
        "qb_lsq_forward": ([i32, i64, p, p, i64, f, f, f, p], None),
        "qb_lsq_backward": ([i32, i64, p, p, p, i64, f, f, f, p, p], None)}, isa=ISA)


def _inner(x: Tensor, s: Tensor) -> int | None:
    """Elements per step value: x.numel() for one step, x[0].numel() for one per leading channel
    (s shaped (C, 1, ...)); None for any other broadcast (the torch code handles it)."""
    if s.numel() == 1:
        return max(x.numel(), 1)
    if x.dim() >= 1 and s.dim() == x.dim() and s.shape[0] == x.shape[0] and s.numel() == x.shape[0]:
        return max(x[0].numel(), 1)
    return None


def usable(x: Tensor, s: Tensor) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and s.dtype == torch.float32
            and s.device.type == "cpu" and x.is_contiguous() and _inner(x, s) is not None and _lib() is not None
            and not tracing())


def forward(x: Tensor, s: Tensor, lo: float, hi: float, eps: float) -> Tensor:
    """round(clamp(x / s', lo, hi)) * s' with s' = max(s, eps) (torch's clamp_min: NaN stays)."""
    lib = _lib()
    assert lib is not None
    sc = s.detach().contiguous()
    out = torch.empty_like(x)
    n = x.numel()
    lib.qb_lsq_forward(kernel_threads(n), n, x.data_ptr(), sc.data_ptr(), _inner(x, s), lo, hi, eps, out.data_ptr())
    return out


def backward(x: Tensor, s: Tensor, grad: Tensor, lo: float, hi: float, eps: float) -> tuple[Tensor, Tensor]:
    """(grad masked outside (lo, hi), grad * ds): the input gradient and the step's elementwise
    terms, with s' = max(s, eps) as in :func:`forward`."""
    lib = _lib()
    assert lib is not None
    sc = s.detach().contiguous()
    grad_x, prod = torch.empty_like(x), torch.empty_like(x)
    n = x.numel()
    lib.qb_lsq_backward(kernel_threads(n), n, x.data_ptr(), sc.data_ptr(), grad.data_ptr(), _inner(x, s), lo, hi,
                        eps, grad_x.data_ptr(), prod.data_ptr())
    return grad_x, prod
