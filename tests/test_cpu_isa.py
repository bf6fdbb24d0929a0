"""Rows are the same on any x86 CPU: importing qbench caps torch's CPU kernels at AVX2.

Found by rerunning the quick suite on an AVX-512 machine: the same torch build gave other top-1
values (oneDNN's convolutions and ATen's loops dispatch on the CPU), while with both capped at AVX2
the published rows came back to the last digit. These tests run fresh interpreters, since torch
reads the caps at its first CPU dispatch.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 only")

PROBE = ("import qbench, torch, os; torch.nn.functional.conv2d(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3)); "
         "print(torch.backends.cpu.get_cpu_capability(), os.environ.get('ONEDNN_MAX_CPU_ISA'))")


def probe(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                                                              "QBENCH_CPU_ISA")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def native_capability() -> str:
    clean = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    return subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                           env=clean, capture_output=True, text=True, check=True).stdout.strip()


def test_importing_qbench_caps_torch_at_avx2() -> None:
    native = native_capability()
    capability, onednn = probe()
    assert onednn == "AVX2"
    assert capability == ("AVX2" if native in ("AVX2", "AVX512") else native)  # never raised above the CPU


def test_native_and_the_users_own_setting_are_left_alone() -> None:
    native = native_capability()
    assert probe(QBENCH_CPU_ISA="native") == [native, "None"]
    assert probe(ATEN_CPU_CAPABILITY="default", ONEDNN_MAX_CPU_ISA="SSE41") == ["DEFAULT", "SSE41"]


def test_rows_record_what_ran() -> None:
    from qbench.run.provenance import cpu_isa, environment

    assert environment()["cpu_isa"] == cpu_isa() and "oneDNN" in cpu_isa()
