"""Test-only parts that kill their own process (SIGKILL), as a segfaulting extension or the
kernel's OOM killer would: method ``crash`` (its weight quantizer, during QAT) and dataset
``kill-data`` (while loading, so during FP training). Imported by the Ray workers by name, so
the tests put this directory on their PYTHONPATH."""
from __future__ import annotations

import os
import signal
from typing import Any, Callable

from qbench import hookimpl
from qbench.api import Method
from qbench.testing import KillWeight


def kill_data(data_dir: Any = None, **options: Any) -> Any:
    os.kill(os.getpid(), signal.SIGKILL)


@hookimpl
def qbench_register_datasets(register: Callable[..., None]) -> None:
    register("kill-data", kill_data)


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    register("kill-w", KillWeight)


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(Method(name="crash", version=1, weight_quantizer="kill-w"))
