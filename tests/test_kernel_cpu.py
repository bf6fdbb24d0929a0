"""A compiled kernel runs only on a CPU with every feature its build assumed (asked of the CPU,
not of torch); where it cannot, one warning per kernel says so and the torch code runs."""
from __future__ import annotations

import ctypes
import importlib.machinery
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
import torch

from qbench.api import KernelFallbackWarning, KernelUnavailable, load_kernel, optional_kernel
from qbench.contract import cpu
from qbench.errors import QbenchError
from qbench.testing import fake_cpu

ROOT = Path(__file__).resolve().parents[1]
V3_ADDS = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}  # abm: LZCNT
V2_ADDS = {"cx16", "lahf_lm", "popcnt", "pni", "ssse3", "sse4_1", "sse4_2"}  # pni: SSE3
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build a library")


def _built(tmp_path: Path) -> Path:
    src = tmp_path / "k.c"
    src.write_text("int qb_twice(int x) { return 2 * x; }\n")
    out = tmp_path / f"_k{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", str(src), "-o", str(out)], check=True)
    return tmp_path


def _fallbacks(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, KernelFallbackWarning)]


def test_each_level_names_every_feature_its_build_may_use() -> None:
    assert cpu.level_flags("x86-64-v2") == V2_ADDS
    assert cpu.level_flags("x86-64-v3") == V2_ADDS | V3_ADDS
    assert cpu.level_flags("x86-64-v3") < cpu.level_flags("x86-64-v4")
    with pytest.raises(ValueError, match="unknown instruction set 'x86-64-v5'"):
        cpu.level_flags("x86-64-v5")


def test_the_flags_are_those_every_core_lists() -> None:
    text = ("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 bmi2\n\n"
            "processor\t: 1\nflags\t\t: fpu sse2 avx bmi2\n\nmodel name\t: x\n")
    assert cpu.flags_from_cpuinfo(text) == {"fpu", "sse2", "avx", "bmi2"}
    assert cpu.flags_from_cpuinfo("processor\t: 0\n") is None


@needs_gcc
def test_torchs_avx2_answer_is_not_trusted_the_cpus_flags_are(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """torch says AVX2 on a CPU without BMI2: refused; torch says DEFAULT (ATEN_CPU_CAPABILITY)
    on a CPU with all of x86-64-v3: loaded."""
    lib_dir = _built(tmp_path)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    with fake_cpu(cpu.level_flags("x86-64-v3") - {"bmi2", "movbe"}):
        with pytest.raises(KernelUnavailable) as err:
            load_kernel(lib_dir, "_k", "test-q kernel='c'", "the param kernel='torch'", isa="x86-64-v3")
    assert "test-q kernel='c': this CPU lacks BMI2, MOVBE" in str(err.value)
    assert "x86-64-v3" in str(err.value) and "Fix: use the param kernel='torch'" in str(err.value)
    assert err.value.problem.startswith("this CPU lacks BMI2, MOVBE")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    with fake_cpu("x86-64-v3"):
        lib = load_kernel(lib_dir, "_k", "test-q", "kernel='torch'", isa="x86-64-v3",
                          signatures={"qb_twice": ([ctypes.c_int], ctypes.c_int)})
    assert lib.qb_twice(21) == 42


@needs_gcc
def test_a_kernel_that_steps_aside_says_so_once_per_kernel(tmp_path: Path) -> None:
    lib_dir = _built(tmp_path)
    with fake_cpu("x86-64-v2"), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got = [optional_kernel(lib_dir, "_k", "test-a") for _ in range(3)] + [optional_kernel(lib_dir, "_k", "test-b")]
    assert got == [None] * 4
    said = _fallbacks(record)
    assert len(said) == 2, said
    assert said[0].startswith("test-a kernel not used: this CPU lacks AVX, AVX2, BMI1, BMI2")
    assert said[0].endswith("; the torch code runs instead, with the same numbers.")
    assert said[1].startswith("test-b kernel not used")
    with fake_cpu("x86-64-v3"), warnings.catch_warnings(record=True) as record:  # a kernel that runs: no word
        warnings.simplefilter("always")
        assert optional_kernel(lib_dir, "_k", "test-c") is not None
    assert not _fallbacks(record)


def test_a_missing_library_is_said_once_too(tmp_path: Path) -> None:
    with fake_cpu("x86-64-v3"), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert optional_kernel(tmp_path, "_k", "test-m") is None
        assert optional_kernel(tmp_path, "_k", "test-m") is None
    said = _fallbacks(record)
    assert len(said) == 1 and said[0].startswith(f"test-m kernel not used: no compiled _k library in {tmp_path}")


@needs_gcc
def test_QBENCH_KERNELS_off_turns_kernels_off_and_a_typo_is_an_error(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    lib_dir = _built(tmp_path)
    monkeypatch.setenv("QBENCH_KERNELS", "off")
    with pytest.raises(KernelUnavailable, match="QBENCH_KERNELS=off. Fix: unset QBENCH_KERNELS"):
        load_kernel(lib_dir, "_k", "test-q", "kernel='torch'", isa=None)
    monkeypatch.setenv("QBENCH_KERNELS", "of")
    with pytest.raises(QbenchError, match="QBENCH_KERNELS='of': use 'off'"):
        optional_kernel(lib_dir, "_k", "test-q", isa=None)
    monkeypatch.setenv("QBENCH_KERNELS", "on")
    assert optional_kernel(lib_dir, "_k", "test-q", isa=None) is not None


def test_elsewhere_the_kernel_is_not_risked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "is_x86_64", lambda: False)
    monkeypatch.setattr(cpu.platform, "machine", lambda: "aarch64")
    assert cpu.lacks("x86-64-v3") == "this is not an x86-64 CPU (aarch64), and the kernel is built for x86-64-v3"
    monkeypatch.setattr(cpu, "is_x86_64", lambda: True)
    monkeypatch.setattr(cpu, "cpu_flags", lambda: None)
    assert "features cannot be read here" in str(cpu.lacks("x86-64-v3"))


def test_the_deprecated_avx2_switch_still_works(tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning, match="isa="), pytest.raises(KernelUnavailable, match="no compiled"):
        load_kernel(tmp_path, "_k", "test-q", "kernel='torch'", avx2=False)


@pytest.mark.parametrize("name", ["lsq", "asq", "n2uq", "apot", "dgms"])
def test_every_kernel_declares_the_level_its_setup_builds_for(name: str) -> None:
    kernel = pytest.importorskip(f"qbench_{name}.kernel")
    march = re.findall(r'"-march=([\w-]+)"', (ROOT / "plugins" / f"qbench-{name}" / "setup.py").read_text())
    assert march == [kernel.ISA]
