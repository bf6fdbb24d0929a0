"""What a training epoch's checkpoint holds, and how the loop restores it.

Everything the rest of the phase draws on: parameters and buffers (quantizer state included),
the optimizer and scheduler, the shuffling generator, torch's global RNG and the RNG of the
job's own GPU, and the state of any allocator or wrapper that keeps some. Restoring all of it
makes a resumed phase compute exactly what the uninterrupted one would have.

Only the job's device's RNG is saved, not every visible GPU's: the stream belongs to the job,
and a job resumed by another worker continues it on whichever GPU that worker has (restoring
"every GPU's" put the job's stream on the wrong device, and failed outright where fewer GPUs
were visible than when the file was written).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import nn


class Checkpointer(Protocol):
    """Where the loop keeps its last epoch (the workspace's :class:`~qbench.run.epochs.EpochCheckpoint`)."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any]) -> None: ...


def epoch_state(epoch: int, step: int, model: nn.Module, opt: torch.optim.Optimizer, sched: Any,
                gen: torch.Generator, stateful: Sequence[Any], history: Sequence[Any],
                device: torch.device | None = None) -> dict[str, Any]:
    state = {
        "epoch": epoch, "step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(), "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
        "stateful": [s.state_dict() for s in stateful],
        "history": [[h.epoch, h.loss, h.lr, h.seconds] for h in history],
    }
    if device is not None and device.type == "cuda":
        state["device_rng"] = torch.cuda.get_rng_state(device)
    return state


def _saved_device_rng(state: dict[str, Any], device: torch.device) -> torch.Tensor | None:
    if "device_rng" in state:
        return state["device_rng"]
    legacy = state.get("cuda_rng")  # older files: every visible GPU's state, by index
    index = device.index or 0
    if isinstance(legacy, (list, tuple)) and index < len(legacy):
        return legacy[index]
    return None


def restore_epoch(state: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer, sched: Any,
                  gen: torch.Generator, stateful: Sequence[Any], device: torch.device | None = None
                  ) -> tuple[int, int]:
    """Load an epoch checkpoint; returns (step, the epoch to start from). The saved GPU stream goes
    to ``device``, the job's GPU now, whatever its index was when the file was written."""
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if device is not None and device.type == "cuda":
        saved = _saved_device_rng(state, device)
        if saved is not None:
            torch.cuda.set_rng_state(saved, device)
    for obj, s in zip(stateful, state["stateful"]):
        obj.load_state_dict(s)
    return int(state["step"]), int(state["epoch"]) + 1
