"""Load a plugin's compiled C kernel with ctypes, or say exactly why it cannot be used.

Why the host has this: a method plugin may ship a small C kernel for its quantizer's hot loop
where torch's per-op costs dominate a training step (DGMS's soft weight, N2UQ's map), built by
the plugin's ``setup.py`` as a plain shared library with no Python or torch headers, so it
builds in a second and survives torch upgrades; ctypes releases the GIL while it runs, and the
kernel splits its work over torch's own OpenMP threads (:func:`kernel_threads`). Finding the
built file, refusing a CPU that lacks the instructions it was compiled for, and naming the fix
belong in one place rather than in every plugin.
"""
from __future__ import annotations

import ctypes
import importlib.machinery
from pathlib import Path
from typing import Any

import torch

from qbench.errors import QbenchError


class KernelUnavailable(QbenchError):
    """A plugin's compiled kernel is missing or cannot run on this CPU."""


def kernel_path(package_dir: Path, stem: str) -> Path | None:
    """The built ``stem`` library in ``package_dir`` (a setuptools extension's file name), if any."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        p = Path(package_dir) / f"{stem}{suffix}"
        if p.exists():
            return p
    return None


def load_kernel(package_dir: Path, stem: str, owner: str, fallback: str, avx2: bool = True,
                signatures: dict[str, tuple[list[Any], Any]] | None = None) -> ctypes.CDLL:
    """The loaded library, or :class:`KernelUnavailable` naming the thing, the problem and the fix.

    :param owner: who needs it, for the message (e.g. ``"dgms-w kernel='c'"``).
    :param fallback: how to run without it (e.g. ``"the weight param kernel='torch'"``).
    :param avx2: the library was compiled for x86-64-v3 (AVX2 + FMA): refuse other CPUs rather
        than die of an illegal instruction.
    :param signatures: ``{function: (argtypes, restype)}`` set on the library's functions.
    """
    lib = _open(package_dir, stem, owner, fallback, avx2)
    for name, (argtypes, restype) in (signatures or {}).items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, restype
    return lib


def optional_kernel(package_dir: Path, stem: str, owner: str,
                    signatures: dict[str, tuple[list[Any], Any]] | None = None) -> ctypes.CDLL | None:
    """:func:`load_kernel`, or None when it is unavailable: for a kernel with the same numbers as
    the torch code it replaces, whose caller then simply runs that code."""
    try:
        return load_kernel(package_dir, stem, owner, "the torch code (automatic)", signatures=signatures)
    except KernelUnavailable:
        return None


def _open(package_dir: Path, stem: str, owner: str, fallback: str, avx2: bool) -> ctypes.CDLL:
    cap = torch.backends.cpu.get_cpu_capability()
    if avx2 and cap not in ("AVX2", "AVX512"):
        raise KernelUnavailable(f"{owner}: the kernel is built for AVX2 (x86-64-v3), but this CPU reports "
                                f"{cap!r}. Fix: use {fallback}.")
    path = kernel_path(package_dir, stem)
    if path is None:
        raise KernelUnavailable(f"{owner}: no compiled {stem} library in {package_dir}. Fix: reinstall the plugin "
                                f"with a C compiler present (pip install -e <the plugin's directory>), or use "
                                f"{fallback}.")
    try:
        return ctypes.CDLL(str(path))
    except OSError as e:
        raise KernelUnavailable(f"{owner}: {path} does not load ({e}). Fix: reinstall the plugin, or use "
                                f"{fallback}.") from e


#: torch's own grain (``at::internal::GRAIN_SIZE``): a kernel gets one thread per this many items,
#: as torch's elementwise ops do, up to ``torch.get_num_threads()``.
GRAIN = 32768


def kernel_threads(n: int, grain: int = GRAIN) -> int:
    """How many threads a kernel should split ``n`` independent items across (at least 1).

    The kernel splits them itself, with an OpenMP ``parallel for`` (build it with ``-fopenmp``):
    its library then shares torch's libgomp, already loaded under the same soname, hence torch's
    thread pool, whose threads are still spinning from the last torch op. (A Python thread pool
    around the ctypes calls, the first design, woke its threads more slowly than the micro ViT's
    kernels ran, and competed with torch's spinning threads for the cores.) Each item is computed
    alone and in order within its thread, so the split changes no value. Under a torch built with
    another OpenMP runtime the library loads the system's libgomp beside it: the same results,
    with two thread pools competing for the cores.
    """
    return max(1, min(torch.get_num_threads(), -(-n // grain)))


def tracing() -> bool:
    """True while torch traces, exports or compiles the model (ONNX export, jit.trace, dynamo).

    A ctypes kernel is opaque to them: traced, it would leave an uninitialised tensor in the
    graph in place of its result. Plugins take their torch code then (the same numbers).
    Both ONNX exporters are covered: the TorchScript one traces with jit.trace, the dynamo one
    with torch.export (``tests/test_ckernel.py`` runs both). ``torch.onnx.is_in_onnx_export()``
    is not asked: it imports two modules per call, and this runs on every quantizer call.
    """
    return bool(torch.jit.is_tracing() or torch.compiler.is_compiling())
