"""qbench registration of the ``slurm`` executor (submitit is imported only when a run starts)."""
from __future__ import annotations

from typing import Any, Callable

from qbench import hookimpl


def slurm_executor(**options: Any) -> Any:
    from .executor import SlurmExecutor

    return SlurmExecutor(**options)


@hookimpl
def qbench_register_executors(register: Callable[..., None]) -> None:
    register("slurm", slurm_executor,
             description="One Slurm job per qbench job through submitit (the workspace on a shared filesystem); "
                         "a preempted or timed-out job requeues and resumes from its epoch checkpoint. Options: "
                         "-X partition=P -X time_min=N -X cpus_per_task=N -X mem_gb=N -X max_running=N "
                         "-X cluster=local (the same jobs as local subprocesses).")
