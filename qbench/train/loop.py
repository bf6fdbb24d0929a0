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
from qbench.train.precision import autocast, batch_layout, computing, grad_scaler, model_layout
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


#: ``after_step(x, y, loss, step, epoch)``: ``loss`` is the step's loss as a detached 0-dim tensor on
#: the device; reading its value is a host sync, so only a hook that needs it reads it
StepHook = Callable[[Tensor, Tensor, Tensor, int, int], None]

#: Steps between two reads of the losses' finiteness. Each read makes the CPU wait for the GPU (a
#: host sync), which drains the device's queue of work; reading every step stalled it. A NaN or inf
#: loss still fails the job with the same FloatingPointError, naming the step that made it, at most
#: this many steps late, and always before its epoch ends (an epoch checkpoint never holds a
#: diverged model) or another error hides it.
FINITE_CHECK_EVERY = 32


class LossWatch:
    """A phase's losses kept on the device: summed for the epoch's mean, checked for NaN and inf
    once per :data:`FINITE_CHECK_EVERY` steps. The sum is float64, as the Python float it replaces
    was, in the same order, so the epoch's mean loss is the same to the bit."""

    def __init__(self) -> None:
        self.window: list[tuple[Tensor, int]] = []  # (loss, steps done before it), not yet checked
        self.total: Tensor | None = None
        self.count = 0

    def add(self, loss: Tensor, n: int, step: int) -> None:
        loss = loss.detach()
        self.window.append((loss, step))
        term = loss.double() * n
        self.total = term if self.total is None else self.total + term
        self.count += n

    def check(self, epoch: int) -> None:
        """Raise :class:`FloatingPointError` for the first non-finite loss since the last check."""
        if not self.window:
            return
        losses = torch.stack([loss.float() for loss, _ in self.window])
        bad = ~torch.isfinite(losses)
        if bad.any():  # the window's one host read
            i = int(bad.nonzero()[0, 0])
            raise FloatingPointError(f"loss became {losses[i].item()} at epoch {epoch}, step {self.window[i][1]}")
        self.window.clear()

    def epoch_mean(self) -> float:
        """The epoch's mean loss (a host read), and a fresh sum for the next epoch."""
        mean = (float(self.total) if self.total is not None else 0.0) / max(self.count, 1)
        self.total, self.count = None, 0
        return mean


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
    """Train ``model`` for ``recipe.epochs`` epochs with ``loss_fn(x, y)``, computing as the
    recipe's precision fields say (:mod:`qbench.train.precision`: TF32, autocast, layout).

    :param extra_params: a method's parameters outside the model (allocator, wrapper) with their
        optimizer settings.
    :param after_step: called as ``after_step(x, y, loss, step, epoch)`` after each optimiser step
        (:data:`StepHook`).
    :param deadline: a ``time.monotonic()`` value; training stops after the epoch that passes it
        and raises :class:`TimeoutError`.
    :param checkpoint: where each finished epoch is saved, and resumed from after a kill.
    :param stateful: objects with ``state_dict()`` / ``load_state_dict()`` (an allocator, a
        wrapper) saved with each epoch.
    :param device: where batches go (the model is already there).
    """
    with computing(recipe, device):
        return _train(model, loss_fn, data, recipe, seed, extra_params, after_step, on_epoch, deadline, checkpoint,
                      stateful, device)


def _train(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], data: DataBundle, recipe: TrainRecipe,
           seed: int, extra_params: ParamSpecs, after_step: StepHook | None,
           on_epoch: Callable[[EpochStats], None] | None, deadline: float | None,
           checkpoint: Checkpointer | None, stateful: Sequence[Any], device: torch.device | None
           ) -> list[EpochStats]:
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = num_batches(data.train, recipe.batch_size)
    model_layout(model, recipe)
    specs = method_param_specs(model)
    specs.update({id(p): spec for p, spec in extra_params})
    named = list(model.named_parameters()) + [(f"extra{i}", p) for i, (p, _) in enumerate(extra_params)]
    opt, sched = build_optimizer(param_groups(named, specs, recipe), recipe, recipe.epochs * steps_per_epoch)
    scaler = grad_scaler(recipe)
    if scaler is not None:  # its loss scale is saved with each epoch, after the method's own state
        stateful = (*stateful, scaler)
    history: list[EpochStats] = []
    step, start = 0, 1
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        step, start = restore_epoch(saved, model, opt, sched, gen, stateful, _device(device))
        history = [EpochStats(*h) for h in saved["history"]]
    watch = LossWatch()
    # a file dataset's loader workers start once for the phase, not at every epoch
    with EpochBatches(data.train, recipe.batch_size, device) as batches:
        for epoch in range(start, recipe.epochs + 1):
            model.train()
            t0 = time.perf_counter()
            try:
                for x, y in batches.epoch(gen):
                    x = batch_layout(x, recipe)
                    with autocast(recipe, device):
                        loss = loss_fn(x, y)
                    watch.add(loss, len(y), step)
                    opt.zero_grad(set_to_none=True)
                    if scaler is None:
                        loss.backward()
                        opt.step()
                    else:
                        scaler.scale(loss).backward()
                        scaler.step(opt)
                        scaler.update()
                    sched.step()
                    step += 1
                    if after_step is not None:
                        after_step(x, y, loss.detach(), step, epoch)
                    if len(watch.window) >= FINITE_CHECK_EVERY:
                        watch.check(epoch)
                watch.check(epoch)
            except FloatingPointError:
                raise
            except Exception:
                watch.check(epoch)  # a NaN before the error is what failed the job, as it was when checked every step
                raise
            stats = EpochStats(epoch, watch.epoch_mean(), opt.param_groups[0]["lr"], time.perf_counter() - t0)
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
def evaluate(model: nn.Module, data: DataBundle, batch_size: int = 256, device: torch.device | None = None,
             recipe: TrainRecipe | None = None) -> dict[str, float]:
    """Top-1 and top-5 accuracy (in %) on the test split, in eval mode (hard-quantized weights),
    computed as ``recipe``'s precision fields say (the phase that trained the model; None: float32).

    The counts stay on the device until the end: two host reads in all, not two per batch."""
    recipe = recipe or TrainRecipe(epochs=0)
    was_training = model.training
    model.eval()
    correct1 = correct5 = torch.zeros((), dtype=torch.long, device=device)
    n = 0
    try:
        with computing(recipe, device):
            model_layout(model, recipe)
            for x, y in iterate_batches(data.test, batch_size, shuffle=False, device=device):
                with autocast(recipe, device):
                    logits = model(batch_layout(x, recipe))
                k = min(5, logits.shape[1])
                top = logits.topk(k, dim=1).indices
                correct1 = correct1 + (top[:, 0] == y).sum()
                correct5 = correct5 + (top == y[:, None]).any(dim=1).sum()
                n += len(y)
    finally:
        model.train(was_training)
    return {"top1": 100.0 * int(correct1) / max(n, 1), "top5": 100.0 * int(correct5) / max(n, 1)}

