"""The built-in executors: local (in this process) and subprocess (one process per job)."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.executors import LocalExecutor, SubprocessExecutor


@hookimpl
def qbench_register_executors(register: Callable[..., None]) -> None:
    register("local", LocalExecutor, description="Run jobs one after another in this process.")
    register("subprocess", SubprocessExecutor,
             description="One fresh process per job: a crash or hang becomes a row, peak memory is per job.")
