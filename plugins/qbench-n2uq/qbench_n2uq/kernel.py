"""The compiled N2UQ map (``_kernel.c``) through ctypes: the same numbers as the torch code.

Used by :class:`qbench_n2uq.function._N2UQMap` for float32 CPU tensors whenever the library
loads; otherwise (another device or dtype, no compiler at install, another CPU) the torch code
runs. Both give the same bits (``tests/test_kernel.py``), so which one ran is not part of a
job's key. The kernel is serial: the boundary gradient must be summed in element order to match
torch's ``index_add_``, and one pass over the elements is already far cheaper than the dozen
torch ops it replaces.
"""
from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from qbench.api import KernelUnavailable, load_kernel

#: Where setup.py puts the built ``_kernel`` library.
PACKAGE_DIR = Path(__file__).parent


@lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL | None:
    """The library, or None (the torch code then runs; nothing else changes)."""
    try:
        lib = load_kernel(PACKAGE_DIR, "_kernel", "n2uq-a", "the torch code (automatic)")
    except KernelUnavailable:
        return None
    i64, i32, p, f = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_float
    lib.qb_n2uq_forward.argtypes = [p, i64, p, i32, p, p, p, i32]
    lib.qb_n2uq_forward.restype = None
    lib.qb_n2uq_backward.argtypes = [p, p, i32, i64, p, p, i32, f, p, p, p, p]
    lib.qb_n2uq_backward.restype = None
    return lib


def usable(x: Tensor) -> bool:
    """The kernel handles ``x``: float32 on the CPU, and the library loaded."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and _lib() is not None


def forward(x: Tensor, points: Tensor, level: Tensor, j_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(level[j], j) with j = #(points <= x) per element of the flat ``x`` (NaN: 0)."""
    lib = _lib()
    assert lib is not None
    flat = x.detach().reshape(-1).contiguous()
    pts, lev = points.detach().contiguous(), level.detach().contiguous()
    out = torch.empty_like(flat)
    j = torch.empty(flat.numel(), dtype=j_dtype)
    lib.qb_n2uq_forward(flat.data_ptr(), flat.numel(), pts.data_ptr(), pts.numel(), lev.data_ptr(), out.data_ptr(),
                        j.data_ptr(), j.element_size())
    return out, j


def backward(x: Tensor, j: Tensor, bounds: Tensor, width: Tensor, step: float, grad: Tensor,
             need_bounds: bool) -> tuple[Tensor, Tensor | None]:
    """(gradient of the flat x, gradient of the boundaries or None), as function.py computes them."""
    lib = _lib()
    assert lib is not None
    flat, g = x.detach().reshape(-1).contiguous(), grad.detach().reshape(-1).contiguous()
    b, w = bounds.detach().contiguous(), width.detach().contiguous()
    grad_x = torch.empty_like(flat)
    grad_b = torch.zeros_like(b) if need_bounds else None
    scratch = torch.empty(3 * flat.numel(), dtype=torch.float32)  # segment (int32) and two term arrays
    lib.qb_n2uq_backward(flat.data_ptr(), j.data_ptr(), j.element_size(), flat.numel(), b.data_ptr(), w.data_ptr(),
                         w.numel(), step, g.data_ptr(), grad_x.data_ptr(),
                         None if grad_b is None else grad_b.data_ptr(), scratch.data_ptr())
    return grad_x, grad_b
