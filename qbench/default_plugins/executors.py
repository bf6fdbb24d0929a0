"""The local executor."""
from __future__ import annotations

from typing import Callable

from qbench import hookimpl
from qbench.executors import LocalExecutor


@hookimpl
def qbench_register_executors(register: Callable[..., None]) -> None:
    register("local", LocalExecutor, description="Run jobs one after another in this process.")
