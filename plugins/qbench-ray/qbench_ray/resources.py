"""What each Ray task asks of the cluster, in one place so a test can hold Ray to it.

Why ``max_calls=1`` on a GPU run: Ray reuses worker processes between tasks, and CUDA binds a
process to the device it first initialised. A reused worker would run its next job on the GPU its
first task was given, whatever Ray assigned this time, so two jobs could share one GPU while
another idles. ``max_calls`` only takes effect where the remote function is made (``ray.remote``),
not through ``.options()``, so the GPU variant is built here. On a CPU run workers are reused:
no device is bound, and a fresh process per task would cost seconds of imports per job.

Why ``loader_cpus``: a file dataset (CIFAR, image folders) decodes and augments in DataLoader
worker processes. Ray counts only what a task asks for, so those workers' CPUs are asked for too,
or Ray packs more tasks on a node than its cores can feed.
"""
from __future__ import annotations

from typing import Any, Callable


def remote(fn: Callable[..., Any], gpu: bool) -> Any:
    """``fn`` as a Ray remote function: one GPU and a fresh worker process per task on a GPU run."""
    import ray

    return ray.remote(num_gpus=1, max_calls=1)(fn) if gpu else ray.remote(fn)


def task_options(threads: int, loader_cpus: int, retries: int, name: str) -> dict[str, Any]:
    """``.options()`` of one task: the recipe's threads plus the loader workers' CPUs."""
    return {"num_cpus": threads + loader_cpus, "max_retries": retries, "name": name}
