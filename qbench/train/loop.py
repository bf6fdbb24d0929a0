"""The training loop shared by FP pre-training and QAT, and evaluation.

One loop for every method: the method changes the model (quantizers), the loss (training
wrapper) and what happens after a step (a learning allocator), never the recipe.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from qbench.contract.optim import DEFAULT_SPEC, OptimSpec
from qbench.contract.quant.base import Quantizer
from qbench.data.bundle import DataBundle, EpochBatches, iterate_batches, num_batches
from qbench.train.recipe import TrainRecipe
from qbench.train.resume import Checkpointer, epoch_state, restore_epoch


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


ParamSpecs = list[tuple[nn.Parameter, OptimSpec]]


def method_param_specs(model: nn.Module) -> dict[int, OptimSpec]:
    """Each quantizer parameter's optimizer settings, as its quantizer declares them."""
    specs: dict[int, OptimSpec] = {}
    for m in model.modules():
        if isinstance(m, Quantizer):
            declared = m.optim_specs()
            for name, p in m.named_parameters():
                specs[id(p)] = declared.get(name, DEFAULT_SPEC)
    return specs


def param_groups(params: Iterable[tuple[str, nn.Parameter]], method_specs: dict[int, OptimSpec],
                 recipe: TrainRecipe) -> list[dict]:
    """The recipe's lr and weight decay for the model's weight matrices/kernels; no decay on
    biases and norms; a method's own parameters (quantizers, allocator, wrapper) at what the
    method declares (:class:`~qbench.contract.optim.OptimSpec`: by default the recipe's lr and no
    decay, since decaying a step size or clipping value towards 0 would change the method)."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for _, p in params:
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        if id(p) in method_specs:
            spec = method_specs[id(p)]
            key = (spec.lr_scale, spec.weight_decay)
        else:
            key = (1.0, recipe.weight_decay if p.ndim > 1 else 0.0)
        groups.setdefault(key, []).append(p)
    return [{"params": ps, "lr": recipe.lr * scale, "weight_decay": wd} for (scale, wd), ps in groups.items()]


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


def _device(device: torch.device | str | None) -> torch.device | None:
    """The job's device with its index (``cuda`` alone means the current GPU)."""
    if device is None:
        return None
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def train(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], data: DataBundle, recipe: TrainRecipe,
          seed: int, extra_params: ParamSpecs = (), after_step: StepHook | None = None,  # type: ignore[assignment]
          on_epoch: Callable[[EpochStats], None] | None = None, deadline: float | None = None,
          checkpoint: Checkpointer | None = None, stateful: Sequence[Any] = (),
          device: torch.device | None = None) -> list[EpochStats]:
    """Train ``model`` for ``recipe.epochs`` epochs with ``loss_fn(x, y)``.

    :param extra_params: a method's parameters outside the model (allocator, wrapper) with their
        optimizer settings.
    :param after_step: called as ``after_step(x, y, loss, step, epoch)`` after each optimiser step.
    :param deadline: a ``time.monotonic()`` value; training stops after the epoch that passes it
        and raises :class:`TimeoutError`.
    :param checkpoint: where each finished epoch is saved, and resumed from after a kill.
    :param stateful: objects with ``state_dict()`` / ``load_state_dict()`` (an allocator, a
        wrapper) saved with each epoch.
    :param device: where batches go (the model is already there).
    """
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = num_batches(data.train, recipe.batch_size)
    specs = method_param_specs(model)
    specs.update({id(p): spec for p, spec in extra_params})
    named = list(model.named_parameters()) + [(f"extra{i}", p) for i, (p, _) in enumerate(extra_params)]
    opt, sched = build_optimizer(param_groups(named, specs, recipe), recipe, recipe.epochs * steps_per_epoch)
    history: list[EpochStats] = []
    step, start = 0, 1
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        step, start = restore_epoch(saved, model, opt, sched, gen, stateful, _device(device))
        history = [EpochStats(*h) for h in saved["history"]]
    # a file dataset's loader workers start once for the phase, not at every epoch
    with EpochBatches(data.train, recipe.batch_size, device) as batches:
        for epoch in range(start, recipe.epochs + 1):
            model.train()
            t0, total, count = time.perf_counter(), 0.0, 0
            for x, y in batches.epoch(gen):
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
            if checkpoint is not None and epoch < recipe.epochs:
                checkpoint.save(epoch_state(epoch, step, model, opt, sched, gen, stateful, history,
                                            _device(device)))
            if on_epoch is not None:
                on_epoch(stats)
            if deadline is not None and time.monotonic() > deadline and epoch < recipe.epochs:
                raise TimeoutError(f"job exceeded its time budget after epoch {epoch}/{recipe.epochs}")
    return history


@torch.no_grad()
def evaluate(model: nn.Module, data: DataBundle, batch_size: int = 256, device: torch.device | None = None
             ) -> dict[str, float]:
    """Top-1 and top-5 accuracy (in %) on the test split, in eval mode (hard-quantized weights)."""
    was_training = model.training
    model.eval()
    correct1 = correct5 = n = 0
    try:
        for x, y in iterate_batches(data.test, batch_size, shuffle=False, device=device):
            logits = model(x)
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices
            correct1 += (top[:, 0] == y).sum().item()
            correct5 += (top == y[:, None]).any(dim=1).sum().item()
            n += len(y)
    finally:
        model.train(was_training)
    return {"top1": 100.0 * correct1 / max(n, 1), "top5": 100.0 * correct5 / max(n, 1)}

