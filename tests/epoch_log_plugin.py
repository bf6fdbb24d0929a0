"""A lifecycle-hook plugin that appends every FP epoch to the file named by $QBENCH_TEST_EPOCH_LOG.

It is re-imported in every worker process, so the log shows which process trained what."""
from __future__ import annotations

import os
from typing import Any

from qbench import hookimpl


@hookimpl
def qbench_after_epoch_completed(job: Any, phase: str, epoch: int, metrics: dict[str, Any]) -> None:
    path = os.environ.get("QBENCH_TEST_EPOCH_LOG")
    if path and phase == "fp":
        with open(path, "a") as f:
            f.write(f"{os.getpid()} {job.fp_key} {epoch}\n")
