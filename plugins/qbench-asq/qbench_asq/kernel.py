"""The compiled ASQ quantizer (``_kernel.c``) through ctypes: the same numbers as the torch code.

:class:`qbench_asq.asq._ASQFunction` uses it for contiguous float32 CPU tensors (batch first)
whenever the library loads on a CPU with its build's instructions (:data:`ISA`); otherwise the
torch code runs, and one warning per process says so. Both give the same bits
(``tests/test_kernel.py``), so which one ran is not part of a job's key.
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
    return optional_kernel(PACKAGE_DIR, "_kernel", "asq-a", {
        "qb_asq_forward": ([i32, i64, p, p, i64, f, f, p], None),
        "qb_asq_backward": ([i32, i64, p, p, p, i64, f, f, p, p], None)}, isa=ISA)


def usable(x: Tensor, sa: Tensor) -> bool:
    """x float32, contiguous, on the CPU, with one step per sample (``sa``: B values), and the library."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.is_contiguous() and x.dim() >= 1
            and sa.dtype == torch.float32 and sa.device.type == "cpu" and sa.numel() == x.shape[0]
            and x.numel() > 0 and _lib() is not None
            and not tracing())


def forward(x: Tensor, sa: Tensor, lo: float, hi: float) -> Tensor:
    """clamp(round(x / sa), lo, hi) * sa, sa per sample."""
    lib = _lib()
    assert lib is not None
    s = sa.detach().reshape(-1).contiguous()
    out = torch.empty_like(x)
    n = x.numel()
    lib.qb_asq_forward(kernel_threads(n), n, x.data_ptr(), s.data_ptr(), x[0].numel(), lo, hi, out.data_ptr())
    return out


def backward(x: Tensor, sa: Tensor, grad: Tensor, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """(grad * inside, grad * d x^/d s_a): the input gradient and the per-element step terms."""
    lib = _lib()
    assert lib is not None
    s = sa.detach().reshape(-1).contiguous()
    grad_x, prod = torch.empty_like(x), torch.empty_like(x)
    n = x.numel()
    lib.qb_asq_backward(kernel_threads(n), n, x.data_ptr(), s.data_ptr(), grad.data_ptr(), x[0].numel(), lo, hi,
                        grad_x.data_ptr(), prod.data_ptr())
    return grad_x, prod
