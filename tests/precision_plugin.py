"""A lifecycle-hook plugin that records, inside a job, what torch's TF32 flags are: when the job
starts (``job``) and at the end of each epoch of each phase (``fp``, ``qat``), in :data:`SEEN`."""
from __future__ import annotations

from typing import Any

import torch

from qbench import hookimpl

#: (method, where, cuBLAS matmul TF32, cuDNN TF32), in the order seen
SEEN: list[tuple[str, str, bool, bool]] = []


def _flags() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@hookimpl
def qbench_before_training_run(job: Any) -> None:
    SEEN.append((job.method.name, "job", *_flags()))


@hookimpl
def qbench_after_epoch_completed(job: Any, phase: str, epoch: int, metrics: dict[str, Any]) -> None:
    SEEN.append((job.method.name, phase, *_flags()))
