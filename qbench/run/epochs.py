"""Epoch checkpoints: a job killed mid-training resumes from its last finished epoch.

After every epoch the training loop hands :meth:`EpochCheckpoint.save` the model (quantizers
included), optimizer, scheduler, allocator and wrapper state and every RNG state it draws from;
the file is written atomically and read back with ``torch.load(weights_only=True)`` (tensors and
plain containers only: nothing in it can run code). A resumed job ends with the same row as an
uninterrupted one; the file is removed once the job's row (or the FP checkpoint) is written.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from qbench.atomic import atomic_write_bytes


class EpochCheckpoint:
    """The last finished epoch of one training phase of one job.

    :param quarantine: called with the path and a reason when the file cannot be read.
    """

    def __init__(self, path: Path, quarantine: Callable[[Path, str], None]) -> None:
        self.path = Path(path)
        self._quarantine = quarantine
        #: the epoch the job resumed from (0: it started from scratch)
        self.resumed_from = 0

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a truncated or foreign file: start the phase again
            self._quarantine(self.path, f"is not a readable epoch checkpoint ({type(exc).__name__})")
            return None
        self.resumed_from = int(state["epoch"])
        return state

    def save(self, state: dict[str, Any]) -> None:
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(self.path, buf.getvalue())

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
