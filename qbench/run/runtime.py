"""How a job computes: device, threads and determinism, set the same way in every process.

A row must not depend on the machine or the executor. torch's intra-op thread count changes
the order of float reductions (LSQ resnet20 W4A4 on digits: 98.06 with 1 thread, 98.89 with 2),
so the suite recipe fixes it, and every process that runs a job (this one, a pool worker, a Ray
task) calls :func:`apply_runtime` before the job starts.
"""
from __future__ import annotations

import os
from typing import Any

import torch

from qbench.errors import QbenchError


def resolve_device(spec: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``, checked against this machine."""
    spec = (spec or "cpu").strip().lower()
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise QbenchError(f"--device {spec!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if dev.type not in ("cpu", "cuda"):
        raise QbenchError(f"--device {spec!r}: qbench runs on cpu or cuda; use auto, cpu, cuda or cuda:N.")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise QbenchError(f"--device {spec!r}: torch sees no CUDA device on this machine "
                              f"(torch {torch.__version__}). Use --device cpu, or auto to pick what is there.")
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise QbenchError(f"--device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"numbered from 0.")
        dev = torch.device("cuda", index)
    return dev


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, so containers and taskset count right)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers(threads: int, device: torch.device) -> int:
    """One worker per GPU on CUDA; on CPU as many as the cores allow at the recipe's threads."""
    if device.type == "cuda":
        return torch.cuda.device_count()
    return max(1, usable_cores() // max(threads, 1))


def worker_device(device: torch.device, worker: int) -> torch.device:
    """The device of pool worker ``worker``: its own GPU (round robin), or the CPU."""
    if device.type != "cuda":
        return device
    return torch.device("cuda", worker % torch.cuda.device_count())


def apply_runtime(threads: int, deterministic: bool, device: torch.device) -> None:
    """Fix what the recipe fixes, in this process, before a job trains.

    ``CUBLAS_WORKSPACE_CONFIG`` must be set before cuBLAS starts, so a CUDA worker calls this
    before its first job. On the CPU, ``warn_only`` keeps an op without a deterministic kernel
    usable (torch warns instead of raising); every CPU op qbench's methods use is deterministic.
    """
    torch.set_num_threads(threads)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.cuda.set_device(device)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def device_facts(device: torch.device) -> dict[str, Any]:
    """Row fields that say where a job ran."""
    if device.type != "cuda":
        return {"device": "cpu", "cuda_version": "", "cudnn_version": ""}
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"device": f"{device} ({torch.cuda.get_device_name(device)})", "cuda_version": torch.version.cuda or "",
            "cudnn_version": str(cudnn or "")}
