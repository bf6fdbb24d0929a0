"""How a result was obtained: versions, commit, machine, date."""
from __future__ import annotations

import datetime as dt
import functools
import platform
import subprocess
from pathlib import Path
from typing import Any

import qbench
from qbench.run.runtime import usable_cores


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the qbench checkout (with '+dirty' when it has local changes), or ''."""
    here = Path(qbench.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        if not sha:
            return ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    import timm
    import torch

    return {
        "qbench_version": qbench.__version__, "torch_version": torch.__version__, "timm_version": timm.__version__,
        "python_version": platform.python_version(), "git_commit": git_commit(),
        "machine": f"{platform.machine()} {platform.system()} {usable_cores()} cores ({platform.processor() or 'cpu'})",
        "cpu_isa": cpu_isa(),
    }


def cpu_isa() -> str:
    """What torch's CPU kernels dispatch to here, e.g. ``AVX2 (oneDNN <= AVX2)``: with the same torch
    build, float32 results differ between instruction sets (qbench caps both, see qbench.CPU_ISA)."""
    import os

    import torch

    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f"{torch.backends.cpu.get_cpu_capability()} (oneDNN {'<= ' + onednn if onednn else 'native'})"


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
