"""What a training epoch's checkpoint holds, and how the loop restores it.

Everything the rest of the phase draws on: parameters and buffers (quantizer state included),
the optimizer and scheduler, the shuffling generator, torch's global RNG (and CUDA's), and the
state of any allocator or wrapper that keeps some. Restoring all of it makes a resumed phase
compute exactly what the uninterrupted one would have.
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
                gen: torch.Generator, stateful: Sequence[Any], history: Sequence[Any]) -> dict[str, Any]:
    state = {
        "epoch": epoch, "step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(), "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
        "stateful": [s.state_dict() for s in stateful],
        "history": [[h.epoch, h.loss, h.lr, h.seconds] for h in history],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def restore_epoch(state: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer, sched: Any,
                  gen: torch.Generator, stateful: Sequence[Any]) -> tuple[int, int]:
    """Load an epoch checkpoint; returns (step, the epoch to start from)."""
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    for obj, s in zip(stateful, state["stateful"]):
        obj.load_state_dict(s)
    return int(state["step"]), int(state["epoch"]) + 1
