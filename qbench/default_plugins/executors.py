"""The built-in executors: local (in this process), pool (worker processes), subprocess."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl


@hookimpl
def qbench_register_executors(register: Callable[..., None]) -> None:
    # the runner imports torch and timm: here, when executors are asked for, not when the plugin loads
    from qbench.run.executors import LocalExecutor, PoolExecutor, SubprocessExecutor

    register("local", LocalExecutor, description="Run jobs one after another in this process.")
    register("pool", PoolExecutor,
             description="Worker processes (--workers N), one job each at a time; a crash or hang becomes a row.")
    register("subprocess", SubprocessExecutor,
             description="One fresh process per job: a crash or hang becomes a row, peak memory is per job.")
