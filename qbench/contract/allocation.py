"""The bit-allocator contract: who decides each layer's bits, before and during training.

An allocator runs :meth:`BitAllocator.allocate` once, before QAT, on the FP model. A learning
allocator (AdaQAT) also acts during training: :meth:`attach` hands it the quantized model,
:meth:`parameters` gives the optimiser anything it learns by gradient, and :meth:`after_step`
runs after every optimiser step with a no-grad loss closure on the same minibatch.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from qbench.contract.bits import BitTarget, LayerBits
from qbench.contract.budget import Budget
from qbench.contract.layer_info import LayerInfo
from qbench.contract.optim import TrainedPart
from qbench.contract.quant.base import WeightQuantizer


@dataclass
class AllocationContext:
    """What an allocator may look at before training.

    :param fp_model: the trained FP model (do not modify it).
    :param calib_batches: a few training batches ``(x, y)`` for sensitivity estimates.
    :param make_weight_quantizer: builds the method's weight quantizer at given bits for a layer,
        so an allocator can measure quantisation error with the method's own quantizer.
    :param seed: the job's seed.
    :param modules: name -> module of ``fp_model``.
    :param budget: what the leaderboard judges the job's allocation by, on the body layers it is
        given (:class:`~qbench.contract.budget.Budget`: bits per weight, activation bits, BitOPs;
        the host derives it from the bit target with ``Budget.from_target``). ``None`` when the
        caller states none; an allocator then derives it from the target itself, or ignores it.
    """

    fp_model: nn.Module
    calib_batches: list[tuple[Tensor, Tensor]]
    make_weight_quantizer: Callable[[int, nn.Module], WeightQuantizer] | None
    seed: int
    modules: dict[str, nn.Module] = field(default_factory=dict)
    budget: Budget | None = None


@dataclass
class StepContext:
    """What a learning allocator sees after an optimiser step.

    :param loss_fn: ``loss_fn()`` recomputes the task loss of the current minibatch under
        ``torch.no_grad()`` with the model's current bit-widths.
    """

    model: nn.Module
    x: Tensor
    y: Tensor
    loss: float
    step: int
    epoch: int
    loss_fn: Callable[[], float]


class BitAllocator(TrainedPart):
    """Base class. Subclasses implement :meth:`allocate`; learning ones override the rest."""

    def allocate(self, layers: list[LayerInfo], target: BitTarget, ctx: AllocationContext) -> dict[str, LayerBits]:
        """Bits for each body layer (first/last layers are set by the suite's rule, not here)."""
        raise NotImplementedError

    def attach(self, model: nn.Module) -> None:
        """Called once the quantized model exists (before the optimiser is built)."""

    def parameters(self) -> Iterable[nn.Parameter]:
        """Parameters the allocator learns by gradient (added to the optimiser)."""
        return ()

    def after_step(self, ctx: StepContext) -> None:
        """Called after every optimiser step during QAT."""

    def report(self) -> dict[str, Any]:
        """Extra facts for the result row (e.g. learned real-valued bit-widths)."""
        return {}
