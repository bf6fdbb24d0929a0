"""Optimizer settings a method declares for its own parameters, as its paper gives them.

The suite's recipe fixes the optimizer, learning rate and weight decay of the model's weights for
every method alike. A method's own parameters (step sizes, clipping values, mixture means) often
train at another rate in their paper: DGMS trains its mixture at 2e-5 while the network uses its
own schedule, PACT decays its clipping value. A quantizer, allocator or wrapper says so with
:class:`OptimSpec`; its values come from the part's parameters, so they are in the job key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OptimSpec:
    """How the optimizer treats a group of a method's own parameters.

    :param lr_scale: multiple of the recipe's learning rate (the schedule applies on top).
    :param weight_decay: L2 decay for these parameters (the recipe's decay never applies to them).
    """

    lr_scale: float = 1.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if not self.lr_scale > 0 or self.weight_decay < 0:
            raise ValueError(f"OptimSpec needs lr_scale > 0 and weight_decay >= 0, got {self}")


#: What a method's parameter gets when its part declares nothing: the recipe's lr, no decay.
DEFAULT_SPEC = OptimSpec()


class TrainedPart:
    """What allocators and wrappers share with the training loop: their parameters' optimizer
    settings, and the state an epoch checkpoint must carry for a killed job to resume exactly."""

    def optim_spec(self) -> OptimSpec:
        """Optimizer settings for every parameter of ``parameters()`` (default: the recipe's lr,
        no decay)."""
        return DEFAULT_SPEC

    def state_dict(self) -> dict[str, Any]:
        """State outside ``parameters()`` that training changes (counters, learned values), saved
        with each epoch checkpoint. Tensors and plain data only (read back with weights_only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
