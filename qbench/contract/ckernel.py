"""Load a plugin's compiled C kernel with ctypes, or say exactly why it cannot be used.

Why the host has this: a method plugin may ship a small C kernel for its quantizer's hot loop
(DGMS's soft weight, N2UQ's map: the torch graphs made those steps many times an FP32 step),
built by the plugin's ``setup.py`` as a plain shared library with no Python or torch headers, so
it builds in a second and survives torch upgrades; ctypes releases the GIL while it runs, and the
kernel splits its work over torch's own OpenMP threads (:func:`kernel_threads`). Finding the
built file, refusing a CPU that lacks an instruction the build assumed (:mod:`qbench.contract.cpu`:
before the library is opened, so the first call cannot die of SIGILL), saying when a kernel steps
aside, and naming the fix belong in one place rather than in every plugin.
"""
from __future__ import annotations

import ctypes
import importlib.machinery
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from qbench.contract import cpu
from qbench.errors import QbenchError

#: ``QBENCH_KERNELS=off`` turns every plugin's compiled kernel off: the torch code runs (to rule a
#: kernel out when a result looks wrong, or to run DGMS's torch graph). Unset or ``on``: kernels
#: run wherever they load.
KERNELS_ENV = "QBENCH_KERNELS"

#: The level every shipped kernel is built for (``-march=x86-64-v3`` in its setup.py).
DEFAULT_ISA = "x86-64-v3"


class KernelUnavailable(QbenchError):
    """A plugin's compiled kernel is missing or cannot run on this CPU.

    ``problem`` is the reason alone (the message adds who needs the kernel and the fix).
    """

    problem: str = ""


class KernelFallbackWarning(UserWarning):
    """A compiled kernel stepped aside and its plugin's torch code runs instead (once per kernel
    per process; filter this category to silence it)."""


#: Kernels that have already said they step aside, in this process.
_warned: set[str] = set()


def kernel_path(package_dir: Path, stem: str) -> Path | None:
    """The built ``stem`` library in ``package_dir`` (a setuptools extension's file name), if any."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        p = Path(package_dir) / f"{stem}{suffix}"
        if p.exists():
            return p
    return None


def load_kernel(package_dir: Path, stem: str, owner: str, fallback: str, avx2: bool | None = None,
                signatures: dict[str, tuple[list[Any], Any]] | None = None, *,
                isa: str | None = DEFAULT_ISA) -> ctypes.CDLL:
    """The plugin's compiled C library ``stem`` in ``package_dir``, opened with ctypes, or
    :class:`KernelUnavailable` naming the thing, the problem and the fix: for a kernel whose numbers
    differ from the torch code's, chosen by a parameter in the job key (else :func:`optional_kernel`).

    :param owner: who needs it, for the message (e.g. ``"dgms-w kernel='c'"``).
    :param fallback: how to run without it (e.g. ``"the weight param kernel='torch'"``).
    :param avx2: deprecated: ``False`` is ``isa=None``.
    :param signatures: ``{function: (argtypes, restype)}`` set on the library's functions.
    :param isa: the x86-64 level the library was compiled for (its ``-march``); the library is
        not opened on a CPU that lacks any feature of that level. ``None``: plain x86-64 or
        portable code, no check.
    """
    if avx2 is not None:
        warnings.warn("load_kernel(avx2=...) is deprecated: pass isa='x86-64-v3' (the build's -march) or "
                      "isa=None", DeprecationWarning, stacklevel=2)
        isa = DEFAULT_ISA if avx2 else None
    lib = _open(package_dir, stem, owner, fallback, isa)
    for name, (argtypes, restype) in (signatures or {}).items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, restype
    return lib


def optional_kernel(package_dir: Path, stem: str, owner: str,
                    signatures: dict[str, tuple[list[Any], Any]] | None = None, *, isa: str | None = DEFAULT_ISA,
                    instead: str = "the torch code runs instead, with the same numbers") -> ctypes.CDLL | None:
    """:func:`load_kernel`, or None when it is unavailable: for a kernel with the same numbers as
    the torch code it replaces, whose caller then simply runs that code.

    Stepping aside is said once per kernel (``owner``) per process, as a
    :class:`KernelFallbackWarning` naming the kernel, the problem and ``instead``: a slower run
    should not be a mystery, and a message per call would bury everything else.
    """
    try:
        return load_kernel(package_dir, stem, owner, "the torch code (automatic)", signatures=signatures, isa=isa)
    except KernelUnavailable as e:
        if owner not in _warned:
            _warned.add(owner)
            # one line: no source line under it, and the "file" is the kernel that stepped aside
            warnings.warn_explicit(f"{owner} kernel not used: {e.problem}; {instead}.", KernelFallbackWarning,
                                   filename=str(Path(package_dir) / stem), lineno=0)
        return None


def _open(package_dir: Path, stem: str, owner: str, fallback: str, isa: str | None) -> ctypes.CDLL:
    switch = os.environ.get(KERNELS_ENV, "").strip().lower()
    if switch not in ("", "on", "off"):
        raise QbenchError(f"{KERNELS_ENV}={os.environ[KERNELS_ENV]!r}: use 'off' (every compiled kernel off, "
                          "the torch code runs) or 'on' (the default).")
    if switch == "off":
        raise _unavailable(owner, f"{KERNELS_ENV}=off", f"unset {KERNELS_ENV}, or use {fallback}")
    lacking = cpu.lacks(isa) if isa is not None else None
    if lacking is not None:
        raise _unavailable(owner, lacking, f"use {fallback}")
    path = kernel_path(package_dir, stem)
    if path is None:
        raise _unavailable(owner, f"no compiled {stem} library in {package_dir}",
                           f"reinstall the plugin with a C compiler present (pip install -e <the plugin's directory>), "
                           f"or use {fallback}")
    try:
        return ctypes.CDLL(str(path))
    except OSError as e:
        raise _unavailable(owner, f"{path} does not load ({e})", f"reinstall the plugin, or use {fallback}") from e


def _unavailable(owner: str, problem: str, fix: str) -> KernelUnavailable:
    err = KernelUnavailable(f"{owner}: {problem}. Fix: {fix}.")
    err.problem = problem
    return err


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
