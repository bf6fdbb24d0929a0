"""What each Ray task asks of the cluster, in one place so a test can hold Ray to it.

Why ``max_calls=1`` on a GPU run: Ray reuses worker processes between tasks, and CUDA binds a
process to the device it first initialised. A reused worker would run its next job on the GPU its
first task was given, whatever Ray assigned this time, so two jobs could share one GPU while
another idles. ``max_calls`` only takes effect where the remote function is made (``ray.remote``),
not through ``.options()``, so the GPU variant is built here. On a CPU run workers are reused:
no device is bound, and a fresh process per task would cost seconds of imports per job.

Why ``gpus`` (:func:`named_gpus`): Ray hands a task any free GPU of its node, so ``--device cuda:1``
alone would not keep jobs off GPU 0. A task of a run that names its GPUs gets them as
``CUDA_VISIBLE_DEVICES`` in its runtime environment; Ray then picks the task's GPU among those
only (its GPU slots map onto the worker's visible devices) and sets ``CUDA_VISIBLE_DEVICES`` to
it, so the task sees one GPU, the named one, and uses it as ``cuda:0``. A local cluster the
executor starts declares only that many GPUs, so no more tasks run at once than GPUs were named.

Why ``loader_cpus``: a file dataset (CIFAR, image folders) decodes and augments in DataLoader
worker processes. Ray counts only what a task asks for, so those workers' CPUs are asked for too,
or Ray packs more tasks on a node than its cores can feed.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable


def remote(fn: Callable[..., Any], gpu: bool) -> Any:
    """``fn`` as a Ray remote function: one GPU and a fresh worker process per task on a GPU run."""
    import ray

    return ray.remote(num_gpus=1, max_calls=1)(fn) if gpu else ray.remote(fn)


def task_options(threads: int, loader_cpus: int, retries: int, name: str, gpus: str | None = None
                 ) -> dict[str, Any]:
    """``.options()`` of one task: the recipe's threads plus the loader workers' CPUs, and the
    named GPUs (:func:`named_gpus`) the task may be given."""
    options: dict[str, Any] = {"num_cpus": threads + loader_cpus, "max_retries": retries, "name": name}
    if gpus is not None:
        options["runtime_env"] = {"env_vars": {"CUDA_VISIBLE_DEVICES": gpus}}
    return options


def named_gpus(devices: Sequence[str], cuda_count: int, visible: str | None) -> str | None:
    """The GPUs a run's tasks may use, as ``CUDA_VISIBLE_DEVICES`` holds them, or None where Ray may
    give any (a CPU run, or ``--device cuda``: every GPU the driver sees).

    :param devices: the run's devices as the driver resolved them (``cuda:1``; ``cuda:0``, ``cuda:2``).
    :param cuda_count: GPUs the driver sees.
    :param visible: the driver's ``CUDA_VISIBLE_DEVICES``: ``cuda:1`` is its second entry there,
        as torch in the driver numbered it. Pure, so the rule is checked without a GPU.
    """
    indices = sorted({int(d.partition(":")[2] or 0) for d in devices if d.startswith("cuda")})
    if not indices or indices == list(range(cuda_count)):
        return None
    physical = [v.strip() for v in visible.split(",")] if visible else [str(i) for i in range(cuda_count)]
    return ",".join(physical[i] if i < len(physical) else str(i) for i in indices)


def run_gpus(devices: Sequence[str]) -> str | None:
    """:func:`named_gpus` of a CUDA run, on this (the driver's) machine."""
    import os

    import torch

    return named_gpus(devices, torch.cuda.device_count(), os.environ.get("CUDA_VISIBLE_DEVICES"))
