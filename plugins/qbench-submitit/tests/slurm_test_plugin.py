"""Test-only parts, imported by the submitit jobs by name (the tests put this folder on PYTHONPATH):

* method ``crash``: its weight quantizer kills its own process (SIGKILL) during QAT, as a
  segfaulting extension or the kernel's OOM killer would;
* a lifecycle hook that, after the first QAT epoch (saved by then), writes a marker file named by
  ``$QBENCH_TEST_PAUSE_MARKER`` and sleeps, so a test can preempt the job at a known point.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from qbench import hookimpl
from qbench.api import Method
from qbench.testing import KillWeight


@hookimpl
def qbench_register_quantizers(register: Callable[..., None]) -> None:
    register("kill-w", KillWeight)


@hookimpl
def qbench_register_methods(register: Callable[..., None]) -> None:
    register(Method(name="crash", version=1, weight_quantizer="kill-w"))


@hookimpl
def qbench_after_epoch_completed(job: Any, phase: str, epoch: int, metrics: dict[str, Any]) -> None:
    marker = os.environ.get("QBENCH_TEST_PAUSE_MARKER")
    if marker and phase == "qat" and epoch == 1:
        Path(marker).write_text(str(os.getpid()))
        time.sleep(60)  # the test preempts the job here; the requeued job resumes after epoch 1
