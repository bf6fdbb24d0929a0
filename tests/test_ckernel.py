"""qbench.api.load_kernel: a plugin's compiled ctypes kernel is found and runs; a missing one is
an error that names the plugin, the problem and the fix."""
from __future__ import annotations

import ctypes
import importlib.machinery
import shutil
import subprocess
from pathlib import Path

import pytest

from qbench.api import KernelUnavailable, QbenchError, load_kernel


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build a library")
def test_a_built_library_loads_and_runs(tmp_path: Path) -> None:
    src = tmp_path / "k.c"
    src.write_text("int qb_twice(int x) { return 2 * x; }\n")
    out = tmp_path / f"_k{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", str(src), "-o", str(out)], check=True)
    lib = load_kernel(tmp_path, "_k", "test-q kernel='c'", "kernel='torch'", isa=None,
                      signatures={"qb_twice": ([ctypes.c_int], ctypes.c_int)})
    assert lib.qb_twice.argtypes == [ctypes.c_int] and lib.qb_twice(21) == 42


def test_a_missing_library_names_owner_problem_and_fix(tmp_path: Path) -> None:
    with pytest.raises(KernelUnavailable) as err:
        load_kernel(tmp_path, "_k", "test-q kernel='c'", "the param kernel='torch'", isa=None)
    msg = str(err.value)
    assert "test-q kernel='c'" in msg and "no compiled _k library" in msg
    assert "pip install -e" in msg and "kernel='torch'" in msg
    assert isinstance(err.value, QbenchError)


def test_optional_kernel_is_none_when_missing(tmp_path: Path) -> None:
    from qbench.api import KernelFallbackWarning, optional_kernel
    from qbench.testing import fake_cpu

    with fake_cpu("x86-64-v3"), pytest.warns(KernelFallbackWarning, match="test-q kernel not used: no compiled _k"):
        assert optional_kernel(tmp_path, "_k", "test-q") is None


def test_a_file_that_is_not_a_library_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / f"_k{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_text("not a shared object")
    with pytest.raises(KernelUnavailable, match="does not load"):
        load_kernel(tmp_path, "_k", "test-q", "kernel='torch'", isa=None)


#: A kernel with the split every plugin kernel uses: one contiguous range per OpenMP thread.
_SPLIT_C = """
#include <omp.h>
#include <stdint.h>
void qb_who(int threads, int64_t n, int32_t *who) {
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int k = 0; k < threads; k++)
        for (int64_t i = n * k / threads; i < n * (k + 1) / threads; i++) who[i] = omp_get_thread_num();
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build a library")
def test_an_openmp_kernel_splits_over_torchs_threads_and_shares_its_libgomp(tmp_path: Path) -> None:
    import torch

    from qbench.api import kernel_threads
    from qbench.testing import torch_threads

    src = tmp_path / "k.c"
    src.write_text(_SPLIT_C)
    out = tmp_path / f"_k{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-fopenmp", str(src), "-o", str(out)], check=True)
    lib = load_kernel(tmp_path, "_k", "test-q", "kernel='torch'", isa=None,
                      signatures={"qb_who": ([ctypes.c_int, ctypes.c_int64, ctypes.c_void_p], None)})
    n = 3 * 32768 + 5
    with torch_threads(3):
        threads = kernel_threads(n)
        who = torch.full((n,), -1, dtype=torch.int32)
        lib.qb_who(threads, n, who.data_ptr())
    assert threads == 3
    assert who.unique_consecutive().tolist() == [0, 1, 2]  # every element, one contiguous range per thread
    maps = Path("/proc/self/maps")
    if maps.exists():  # the library resolved libgomp.so.1 to torch's copy, not the system's
        # (other wheels bundle theirs under mangled names, e.g. scikit-learn's libgomp-<hash>.so)
        gomp = {line.split()[-1] for line in maps.read_text().splitlines() if "/libgomp.so" in line}
        assert len(gomp) == 1, gomp


def test_kernel_threads_follows_torchs_grain_and_thread_count() -> None:
    from qbench.api import kernel_threads
    from qbench.contract.ckernel import GRAIN
    from qbench.testing import torch_threads

    with torch_threads(2):
        assert [kernel_threads(n) for n in (0, 1, GRAIN, GRAIN + 1, 100 * GRAIN)] == [1, 1, 1, 2, 2]
        assert kernel_threads(3, grain=1) == 2
    with torch_threads(1):
        assert kernel_threads(100 * GRAIN) == 1


def test_tracing_is_seen_under_jit_trace_and_not_in_eager_code() -> None:
    import torch

    from qbench.api import tracing

    seen: list[bool] = []

    def f(t: torch.Tensor) -> torch.Tensor:
        seen.append(tracing())
        return t * 2

    f(torch.ones(2))
    torch.jit.trace(f, (torch.ones(2),), check_trace=False)
    assert seen == [False, True]


def test_tracing_is_seen_by_both_onnx_exporters() -> None:
    import io

    import torch

    from qbench.api import tracing

    seen: list[bool] = []

    class Twice(torch.nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            seen.append(tracing())
            return t * 2

    torch.onnx.export(Twice(), (torch.ones(2),), io.BytesIO(), dynamo=False)  # qbench's deploy check
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter's dependency)
    except ImportError:
        assert seen == [True]
        return
    torch.onnx.export(Twice(), (torch.ones(2),), dynamo=True, verbose=False)
    assert seen and all(seen)
