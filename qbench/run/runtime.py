"""How a job computes: device, threads and determinism, set the same way in every process.

A row must not depend on the machine or the executor. torch's intra-op thread count changes
the order of float reductions (LSQ resnet20 W4A4 on digits: 98.06 with 1 thread, 98.89 with 2),
so the suite recipe fixes it, and every process that runs a job (this one, a pool worker, a Ray
task) calls :func:`apply_runtime` before the job starts.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from qbench.errors import QbenchError
from qbench.train.precision import set_tf32


def parse_devices(spec: str, cuda_count: int) -> list[torch.device]:
    """The devices ``--device`` names on a machine with ``cuda_count`` GPUs: ``cpu``; ``cuda`` (every
    GPU, one pool worker each); ``cuda:N`` (that GPU only); ``cuda:N,M`` (those); ``auto`` (every GPU
    when there is one, else the CPU). Pure, so the rules are checked without a GPU."""
    spec = (spec or "cpu").strip().lower()
    if spec == "auto":
        spec = "cuda" if cuda_count else "cpu"
    if spec == "cpu":
        return [torch.device("cpu")]
    head, _, tail = spec.partition(":")
    if head != "cuda":
        raise QbenchError(f"--device {spec!r}: qbench runs on cpu or cuda; use auto, cpu, cuda, cuda:N or "
                          "cuda:N,M.")
    if not cuda_count:
        raise QbenchError(f"--device {spec!r}: torch sees no CUDA device on this machine "
                          f"(torch {torch.__version__}). Use --device cpu, or auto to pick what is there.")
    if not tail:
        return [torch.device("cuda", i) for i in range(cuda_count)]
    try:
        indices = [int(part) for part in tail.split(",")]
    except ValueError:
        raise QbenchError(f"--device {spec!r} is not a device; use auto, cpu, cuda, cuda:N or cuda:N,M.") from None
    bad = [i for i in indices if not 0 <= i < cuda_count]
    if bad:
        raise QbenchError(f"--device {spec!r}: this machine has {cuda_count} CUDA device(s), numbered from 0.")
    if len(set(indices)) != len(indices):
        raise QbenchError(f"--device {spec!r} names a GPU twice; give each once (--workers N puts N workers "
                          "on them).")
    return [torch.device("cuda", i) for i in indices]


def resolve_devices(spec: str) -> list[torch.device]:
    """:func:`parse_devices` on this machine."""
    return parse_devices(spec, torch.cuda.device_count() if torch.cuda.is_available() else 0)


def resolve_device(spec: str) -> torch.device:
    """The first device ``spec`` names (where a job runs in this process)."""
    return resolve_devices(spec)[0]


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, so containers and taskset count right)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _as_list(devices: torch.device | Sequence[torch.device]) -> list[torch.device]:
    return [devices] if isinstance(devices, torch.device) else list(devices)


def default_workers(threads: int, devices: torch.device | Sequence[torch.device]) -> int:
    """One worker per GPU named on CUDA; on CPU as many as the cores allow at the recipe's threads."""
    devs = _as_list(devices)
    if devs[0].type == "cuda":
        return len(devs)
    return max(1, usable_cores() // max(threads, 1))


def worker_device(devices: torch.device | Sequence[torch.device], worker: int) -> torch.device:
    """The device of pool worker ``worker``: the named GPUs in turn (only those: ``--device cuda:1``
    keeps every worker on GPU 1), or the CPU."""
    devs = _as_list(devices)
    return devs[worker % len(devs)]


def apply_runtime(threads: int, deterministic: bool, device: torch.device, tf32: bool = False) -> None:
    """Fix what the recipe fixes, in this process, before a job trains.

    ``CUBLAS_WORKSPACE_CONFIG`` must be set before cuBLAS starts, so a CUDA worker calls this
    before its first job. On the CPU, ``warn_only`` keeps an op without a deterministic kernel
    usable (torch warns instead of raising); every CPU op qbench's methods use is deterministic.
    ``tf32`` (the job's recipe's) holds for the whole job: calibration, audit and deploy check too;
    each training phase and evaluation sets its own recipe's (:mod:`qbench.train.precision`).
    """
    torch.set_num_threads(threads)
    set_tf32(tf32)
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
