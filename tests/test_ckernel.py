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
    lib = load_kernel(tmp_path, "_k", "test-q kernel='c'", "kernel='torch'", avx2=False,
                      signatures={"qb_twice": ([ctypes.c_int], ctypes.c_int)})
    assert lib.qb_twice.argtypes == [ctypes.c_int] and lib.qb_twice(21) == 42


def test_a_missing_library_names_owner_problem_and_fix(tmp_path: Path) -> None:
    with pytest.raises(KernelUnavailable) as err:
        load_kernel(tmp_path, "_k", "test-q kernel='c'", "the param kernel='torch'", avx2=False)
    msg = str(err.value)
    assert "test-q kernel='c'" in msg and "no compiled _k library" in msg
    assert "pip install -e" in msg and "kernel='torch'" in msg
    assert isinstance(err.value, QbenchError)


def test_optional_kernel_is_none_when_missing(tmp_path: Path) -> None:
    from qbench.api import optional_kernel

    assert optional_kernel(tmp_path, "_k", "test-q") is None


def test_a_file_that_is_not_a_library_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / f"_k{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_text("not a shared object")
    with pytest.raises(KernelUnavailable, match="does not load"):
        load_kernel(tmp_path, "_k", "test-q", "kernel='torch'", avx2=False)


def test_run_split_covers_every_element_once_in_one_range_per_thread() -> None:
    import torch

    from qbench.api import run_split

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        for n, min_split, parts in ((10, 100, 1), (1000, 100, 3), (2, 1, 2), (0, 100, 1)):
            ranges: list[tuple[int, int, str]] = []
            run_split(lambda a, b, tag: ranges.append((a, b, tag)), n, "x", min_split=min_split)
            assert len(ranges) == parts and all(tag == "x" for *_, tag in ranges)
            covered = sorted(i for a, b, _ in ranges for i in range(a, b))
            assert covered == list(range(n))
    finally:
        torch.set_num_threads(threads)


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
