"""The compiled N2UQ map (``_kernel.c``) through ctypes: the same numbers as the torch code.

Used by :class:`qbench_n2uq.function._N2UQMap` for float32 CPU tensors whenever the library
loads on a CPU with its build's instructions (:data:`ISA`); otherwise (another device or dtype,
no compiler at install, an older CPU) the torch code runs, with one warning per process when the
library is the reason. Both give the same bits (``tests/test_kernel.py``), so which one ran is not
part of a job's key. The kernel splits the elementwise work over torch's OpenMP threads itself
(``qbench.api.kernel_threads``); the boundary gradient is summed serially, in element order, to
match torch's ``index_add_``.
"""
from __future__ import annotations

import ctypes
import threading
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
#: The fused activation (function.n2uq_activation) from this many elements: NaN, which only the
#: grid path of count_at_or_below (from FAST_MIN_NUMEL = 8192) counts as 0, then agrees too.
FUSED_MIN = 8192


@lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL | None:
    """The library, or None (the torch code then runs; nothing else changes)."""
    i64, i32, p, f = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p, ctypes.c_float
    return optional_kernel(PACKAGE_DIR, "_kernel", "n2uq-a", {
        "qb_n2uq_forward": ([i32, i64, p, p, i32, p, p, p, i32], None),
        "qb_n2uq_terms": ([i32, i64, p, p, i32, p, p, i32, f, p, p, i32, p, p, p], None),
        "qb_n2uq_sums": ([i64, p, p, p, p, i32], None),
        "qb_n2uq_points": ([p, i32, p], None),
        "qb_n2uq_act_forward": ([i32, i64, p, f, p, i32, p, f, i32, p, p, i32], None),
        "qb_n2uq_act_terms": ([i32, i64, p, f, p, i32, p, p, i32, f, p, f, i32, p, p, i32, p, p, p, p, p], None)},
        isa=ISA)


def usable(x: Tensor) -> bool:
    """The kernel handles ``x``: float32 on the CPU, and the library loaded."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and _lib() is not None and not tracing()


def points(bounds: Tensor) -> Tensor:
    """t_0, T_1, t_1, ..., T_n, t_n with T_i = 0.5 * (t_{i-1} + t_i), from float32 CPU bounds."""
    lib = _lib()
    assert lib is not None
    b = bounds.detach().contiguous()
    out = torch.empty(2 * b.numel() - 1, dtype=b.dtype)
    lib.qb_n2uq_points(b.data_ptr(), b.numel(), out.data_ptr())
    return out


def forward(x: Tensor, points: Tensor, level: Tensor, j_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """(level[j], j) with j = #(points <= x) per element of the flat ``x`` (NaN: 0)."""
    lib, flat, pts, lev, out, j = _forward_buffers(x, points, level, j_dtype)
    n = flat.numel()
    lib.qb_n2uq_forward(kernel_threads(n), n, flat.data_ptr(), pts.data_ptr(), pts.numel(), lev.data_ptr(),
                        out.data_ptr(), j.data_ptr(), j.element_size())
    return out, j


_scratch = threading.local()


def _temporaries(n: int, count: int) -> list[Tensor]:
    """``count`` float32 buffers of ``n`` elements for a backward's intermediate terms, reused
    from call to call (per thread; the storage grows to the largest tensor seen).

    Why: a fresh buffer of a few hundred KB is fresh pages, and first-touch page faults cost more
    than the loop that fills them (on the micro ViT they made up most of the backward).
    Only terms that die within the call, or that the caller reduces at once, live here.
    """
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.numel() < n * count:
        buf = _scratch.buf = torch.empty(n * count)
    return [buf[k * n:(k + 1) * n] for k in range(count)]


def _forward_buffers(x: Tensor, points: Tensor, level: Tensor, j_dtype: torch.dtype
                     ) -> tuple[ctypes.CDLL, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The library, the flat input, contiguous tables, and the output and index buffers."""
    lib = _lib()
    assert lib is not None
    flat = x.detach().reshape(-1).contiguous()
    out, j = torch.empty_like(flat), torch.empty(flat.numel(), dtype=j_dtype)
    return lib, flat, points.detach().contiguous(), level.detach().contiguous(), out, j


def backward(x: Tensor, j: Tensor, bounds: Tensor, width: Tensor, step: float, grad: Tensor,
             need_bounds: bool) -> tuple[Tensor, Tensor | None]:
    """(gradient of the flat x, gradient of the boundaries or None), as function.py computes them."""
    lib = _lib()
    assert lib is not None
    flat, g = x.detach().reshape(-1).contiguous(), grad.detach().reshape(-1).contiguous()
    b, w = bounds.detach().contiguous(), width.detach().contiguous()
    n = flat.numel()
    grad_x = torch.empty_like(flat)
    t1, t2, seg_f = _temporaries(n, 3)
    seg = seg_f.view(torch.int32)
    lib.qb_n2uq_terms(kernel_threads(n), n, flat.data_ptr(), j.data_ptr(), j.element_size(), b.data_ptr(),
                      w.data_ptr(), w.numel(), step, g.data_ptr(), grad_x.data_ptr(), int(need_bounds),
                      seg.data_ptr(), t1.data_ptr(), t2.data_ptr())
    if not need_bounds:
        return grad_x, None
    grad_b = torch.zeros_like(b)
    lib.qb_n2uq_sums(n, seg.data_ptr(), t1.data_ptr(), t2.data_ptr(), grad_b.data_ptr(), w.numel())
    return grad_x, grad_b


def act_forward(x: Tensor, s: float, points: Tensor, level: Tensor, offset: float, rescale: bool,
                j_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """((level[j] - offset) * s, j) with j counted on x / s: the whole ``n2uq-a`` forward."""
    lib, flat, pts, lev, out, j = _forward_buffers(x, points, level, j_dtype)
    n = flat.numel()
    lib.qb_n2uq_act_forward(kernel_threads(n), n, flat.data_ptr(), s, pts.data_ptr(), pts.numel(), lev.data_ptr(),
                            offset, int(rescale), out.data_ptr(), j.data_ptr(), j.element_size())
    return out.view_as(x), j


def act_backward(x: Tensor, s: float, j: Tensor, bounds: Tensor, width: Tensor, step: float, level: Tensor,
                 offset: float, rescale: bool, grad: Tensor, need_bounds: bool
                 ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """(grad x, the step's DivBackward terms, its MulBackward terms or None, grad bounds or None);
    the caller sums the terms as autograd would, at once: they live in reused buffers."""
    lib = _lib()
    assert lib is not None
    flat, g = x.detach().reshape(-1).contiguous(), grad.detach().reshape(-1).contiguous()
    b, w, lev = bounds.detach().contiguous(), width.detach().contiguous(), level.detach().contiguous()
    n = flat.numel()
    grad_x = torch.empty_like(flat)
    t1, t2, seg_f, ts_div, ts_mul = _temporaries(n, 5)  # ts_mul unused without rescale
    seg = seg_f.view(torch.int32)
    lib.qb_n2uq_act_terms(kernel_threads(n), n, flat.data_ptr(), s, j.data_ptr(), j.element_size(), b.data_ptr(),
                          w.data_ptr(), w.numel(), step, lev.data_ptr(), offset, int(rescale), g.data_ptr(),
                          grad_x.data_ptr(), int(need_bounds), seg.data_ptr(), t1.data_ptr(), t2.data_ptr(),
                          ts_mul.data_ptr(), ts_div.data_ptr())
    grad_b = None
    if need_bounds:
        grad_b = torch.zeros_like(b)
        lib.qb_n2uq_sums(n, seg.data_ptr(), t1.data_ptr(), t2.data_ptr(), grad_b.data_ptr(), w.numel())
    return (grad_x.view_as(x), ts_div.view_as(x), ts_mul.view_as(x) if rescale else None, grad_b)
