"""The compiled RCF (``_kernel.c``) through ctypes: the same numbers as the composed torch code.

:class:`qbench_apot.rcf._RCF` uses it for contiguous float32 CPU tensors with a 0-dim alpha
whenever the library loads on a CPU with its build's instructions (:data:`ISA`); otherwise
(another device or dtype, no compiler at install, an older CPU, a trace or export) the torch
expression runs, with one warning per process when the library is the reason. Both give the same
bits (``tests/test_kernel.py``), so which one ran is not part of a job's key.
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
#: The C side keeps the midpoints on its stack: larger level sets take the torch code.
MAX_LEVELS = 1024


@lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL | None:
    """The library, or None (the torch code then runs; nothing else changes)."""
    i32, i64, p, f = ctypes.c_int, ctypes.c_int64, ctypes.c_void_p, ctypes.c_float
    return optional_kernel(PACKAGE_DIR, "_kernel", "apot", {
        "qb_apot_forward": ([i32, i64, p, f, f, p, i32, p], _checked),
        "qb_apot_backward": ([i32, i64, p, f, f, i32, p, i32, p, p, p, p], _checked)}, isa=ISA)


def _checked(status: int) -> None:
    """restype of the entry points: kernel.usable() already refuses what they refuse."""
    if status != 0:
        raise ValueError(f"apot kernel: level set outside 1..{MAX_LEVELS} levels")


@lru_cache(maxsize=1)
def clamp_grad_at_bounds() -> bool:
    """Whether the installed torch's clamp passes the gradient at the clip limits themselves
    (ClampBackward's mask lo <= v <= hi) or not (lo < v < hi): asked once, so the kernel computes
    what the composed expression computes on this torch."""
    with torch.enable_grad():  # first asked inside a backward, where grad mode is off
        v = torch.tensor([0.0, 1.0], requires_grad=True)
        (grad,) = torch.autograd.grad(torch.clamp(v, 0.0, 1.0), v, torch.ones(2))
    return bool(grad.eq(1.0).all())


def usable(x: Tensor, alpha: Tensor, levels: Tensor) -> bool:
    """x float32 contiguous on the CPU, alpha a 0-dim float32 CPU tensor, a 1-D float32 CPU level
    set of at most :data:`MAX_LEVELS`, the library loaded, and no trace or export running."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.is_contiguous()
            and alpha.dim() == 0 and alpha.dtype == torch.float32 and alpha.device.type == "cpu"
            and levels.dim() == 1 and 1 <= levels.numel() <= MAX_LEVELS and levels.dtype == torch.float32
            and levels.device.type == "cpu" and _lib() is not None and not tracing())


def forward(x: Tensor, alpha: float, lo: float, levels: Tensor) -> Tensor:
    """(u + (d - u)) * alpha, u = clamp(x / alpha, lo, 1), d the level nearest u."""
    lib = _lib()
    assert lib is not None
    lev = levels.detach().contiguous()
    out, n = torch.empty_like(x), x.numel()
    lib.qb_apot_forward(kernel_threads(n), n, x.data_ptr(), alpha, lo, lev.data_ptr(), lev.numel(), out.data_ptr())
    return out


def backward(x: Tensor, alpha: float, lo: float, levels: Tensor, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(grad x, alpha's MulBackward terms, alpha's DivBackward terms): the caller sums the terms."""
    lib = _lib()
    assert lib is not None
    lev = levels.detach().contiguous()
    grad_x, t_mul, t_div = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    n = x.numel()
    lib.qb_apot_backward(kernel_threads(n), n, x.data_ptr(), alpha, lo, int(clamp_grad_at_bounds()), lev.data_ptr(),
                         lev.numel(), grad.data_ptr(), grad_x.data_ptr(), t_mul.data_ptr(), t_div.data_ptr())
    return grad_x, t_mul, t_div
