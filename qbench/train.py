"""The training loop shared by FP pre-training and QAT, and evaluation.

One loop for every method: the method changes the model (quantizers), the loss (training
wrapper) and what happens after a step (a learning allocator), never the recipe.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .data.bundle import DataBundle, iterate_batches, num_batches
from .quant.base import Quantizer
from .suite import TrainRecipe


@dataclass
class EpochStats:
    epoch: int
    loss: float
    lr: float
    seconds: float


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Forwards in training mode that must not move BN running statistics (a learning allocator's
    probes, frozen FP blocks): momentum 0 keeps the running statistics while the forward still
    normalises with batch statistics, as training does."""
    saved = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):  # momentum None (cumulative) too
            tracked = m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None
            saved.append((m, m.momentum, tracked))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, tracked in saved:
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def param_groups(params: Iterable[tuple[str, nn.Parameter]], quantizer_params: set[int],
                 weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices/kernels only; none on biases, norms or quantizer parameters
    (decaying a step size or clipping value towards 0 would change the method)."""
    decay, no_decay, seen = [], [], set()
    for _, p in params:
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if p.ndim <= 1 or id(p) in quantizer_params else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def quantizer_param_ids(model: nn.Module) -> set[int]:
    return {id(p) for m in model.modules() if isinstance(m, Quantizer) for p in m.parameters()}


def build_optimizer(groups: list[dict], recipe: TrainRecipe, total_steps: int
                    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    if recipe.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=False)
    elif recipe.optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=recipe.lr)
    else:
        opt = torch.optim.AdamW(groups, lr=recipe.lr)
    if recipe.schedule == "cosine":
        sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(total_steps, 1))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched


StepHook = Callable[[Tensor, Tensor, float, int, int], None]


def train(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], data: DataBundle, recipe: TrainRecipe,
          seed: int, extra_params: Iterable[nn.Parameter] = (), after_step: StepHook | None = None,
          on_epoch: Callable[[EpochStats], None] | None = None, deadline: float | None = None) -> list[EpochStats]:
    """Train ``model`` for ``recipe.epochs`` epochs with ``loss_fn(x, y)``.

    :param after_step: called as ``after_step(x, y, loss, step, epoch)`` after each optimiser step.
    :param deadline: a ``time.monotonic()`` value; training stops after the epoch that passes it
        and raises :class:`TimeoutError`.
    """
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = num_batches(data.train, recipe.batch_size)
    named = list(model.named_parameters()) + [(f"extra{i}", p) for i, p in enumerate(extra_params)]
    groups = param_groups(named, quantizer_param_ids(model), recipe.weight_decay)
    opt, sched = build_optimizer(groups, recipe, recipe.epochs * steps_per_epoch)
    history: list[EpochStats] = []
    step = 0
    for epoch in range(1, recipe.epochs + 1):
        model.train()
        t0, total, count = time.perf_counter(), 0.0, 0
        for x, y in iterate_batches(data.train, recipe.batch_size, shuffle=True, generator=gen):
            loss = loss_fn(x, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch}, step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total += loss.item() * len(y)
            count += len(y)
            if after_step is not None:
                after_step(x, y, loss.item(), step, epoch)
        stats = EpochStats(epoch, total / max(count, 1), opt.param_groups[0]["lr"], time.perf_counter() - t0)
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
        if deadline is not None and time.monotonic() > deadline and epoch < recipe.epochs:
            raise TimeoutError(f"job exceeded its time budget after epoch {epoch}/{recipe.epochs}")
    return history


@torch.no_grad()
def evaluate(model: nn.Module, data: DataBundle, batch_size: int = 256) -> dict[str, float]:
    """Top-1 and top-5 accuracy (in %) on the test split, in eval mode (hard-quantized weights)."""
    was_training = model.training
    model.eval()
    correct1 = correct5 = n = 0
    try:
        for x, y in iterate_batches(data.test, batch_size, shuffle=False):
            logits = model(x)
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices
            correct1 += (top[:, 0] == y).sum().item()
            correct5 += (top == y[:, None]).any(dim=1).sum().item()
            n += len(y)
    finally:
        model.train(was_training)
    return {"top1": 100.0 * correct1 / max(n, 1), "top5": 100.0 * correct5 / max(n, 1)}


def is_finite_number(v: float) -> bool:
    return isinstance(v, float) and math.isfinite(v)
