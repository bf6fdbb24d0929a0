"""qbench registration of the ``ray`` executor (Ray itself is imported only when a run starts)."""
from __future__ import annotations

from typing import Any, Callable

from qbench import hookimpl


def ray_executor(**options: Any) -> Any:
    from .executor import RayExecutor

    return RayExecutor(**options)


@hookimpl
def qbench_register_executors(register: Callable[..., None]) -> None:
    register("ray", ray_executor,
             description="One Ray task per job on a Ray cluster (--ray-address; default: a local one); "
                         "FP checkpoints travel through Ray's object store. Options: -X retries=N.")
