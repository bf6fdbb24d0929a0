"""Build a method's quantized model from the FP checkpoint, then fine-tune it.

This is where the three parts of a method meet: the allocator decides bits, the quantizers are
attached, the training wrapper computes the loss, and a learning allocator acts after each step.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from qbench.contract.allocation import AllocationContext, BitAllocator, StepContext
from qbench.contract.bits import BitTarget, LayerBits, first_last_bits
from qbench.contract.budget import Budget
from qbench.contract.layer_info import LayerInfo
from qbench.contract.method import Method
from qbench.contract.quant.layers import quant_layers
from qbench.contract.wrappers import TrainingWrapper
from qbench.data.bundle import DataBundle, iterate_batches
from qbench.errors import PluginError
from qbench.plugin.catalog import Catalog
from qbench.train.learned import learned_layers, read_learned, summarize_learned
from qbench.train.loop import EpochStats, frozen_bn_stats, train
from qbench.train.passes import PassCounter, teacher_modules
from qbench.train.resume import Checkpointer
from qbench.train.surgery import find_layers, quantize_model

CALIB_BATCHES = 4


@dataclass
class QatResult:
    model: nn.Module  # what is evaluated: wrapper.eval_model(qmodel)
    layers: list[LayerInfo]
    allocator: BitAllocator
    extra: dict[str, Any] = field(default_factory=dict)
    #: what the quantizers learned, by ``<kind>.<key>`` (:func:`qbench.train.learned.summarize_learned`);
    #: empty when no quantizer reports anything
    learned: dict[str, Any] = field(default_factory=dict)
    #: the same per quantizer, at QAT start and end (:func:`qbench.train.learned.learned_layers`)
    learned_layers: dict[str, Any] = field(default_factory=dict)
    #: forward passes per optimizer step, student and teachers (:class:`qbench.train.passes.PassCounter`)
    costs: dict[str, float] = field(default_factory=dict)


def frozen_copy(model: nn.Module) -> nn.Module:
    fp = copy.deepcopy(model).eval()
    for p in fp.parameters():
        p.requires_grad_(False)
    return fp


def prepare(method: Method, catalog: Catalog, fp_model: nn.Module, data: DataBundle, target: BitTarget,
            first_last: str, seed: int, device: torch.device | None = None, timings: dict[str, float] | None = None
            ) -> tuple[nn.Module, list[LayerInfo], BitAllocator]:
    """The quantized model (quantizers attached and initialised, on ``device``) and its allocator.

    ``timings`` (when given) receives ``weight_init_s``: the weight quantizers' initialisation
    alone (DGMS's k-means, for instance), which ``qbench bench`` reports apart from calibration.
    """
    torch.manual_seed(seed)
    qmodel = copy.deepcopy(fp_model)
    layers = find_layers(qmodel, data.sample().to(device or "cpu"))
    params_w, params_a = method.part_params("weight"), method.part_params("activation")
    wq_entry = catalog.quantizers.get(method.weight_quantizer) if method.weight_quantizer else None
    aq_entry = catalog.quantizers.get(method.activation_quantizer) if method.activation_quantizer else None
    make_wq = (lambda bits, layer: wq_entry.factory(bits=bits, layer=layer, **params_w)) if wq_entry else None
    make_aq = (lambda bits, layer: aq_entry.factory(bits=bits, layer=layer, **params_a)) if aq_entry else None

    gen = torch.Generator().manual_seed(seed)
    calib = list(iterate_batches(data.train, 64, True, gen, device=device, max_batches=CALIB_BATCHES))
    allocator: BitAllocator = catalog.allocators.get(method.allocator).factory(**method.part_params("allocator"))
    body = [l for l in layers if l.role == "body"]
    ctx = AllocationContext(fp_model=fp_model, calib_batches=calib, make_weight_quantizer=make_wq, seed=seed,
                            modules=dict(fp_model.named_modules()), budget=Budget.from_target(body, target))
    plan = dict(allocator.allocate(body, target, ctx))
    missing = {l.name for l in body} - set(plan)
    if missing:
        raise PluginError(f"Bit-allocator {method.allocator!r} gave no bits for layers {sorted(missing)}; "
                          "allocate() must return bits for every body layer it is given.")
    edge = first_last_bits(first_last)
    for l in layers:
        if l.role != "body":
            plan[l.name] = edge
    if method.weight_only:
        plan = {k: LayerBits(v.w, None) for k, v in plan.items()}
    quantize_model(qmodel, plan, make_wq, make_aq)
    if device is not None:
        qmodel.to(device)  # the quantizers' own parameters and buffers join the model there
    t0 = time.perf_counter()
    for _, layer in quant_layers(qmodel):
        if layer.wq is not None:
            layer.wq.initialize(layer.weight)
    if timings is not None:
        timings["weight_init_s"] = time.perf_counter() - t0
    # Activation quantizers initialise from the first batch as training will see it (BN on batch
    # statistics: quantized weights change every layer's scale), without moving running statistics.
    qmodel.train()
    with torch.no_grad(), frozen_bn_stats(qmodel):
        qmodel(calib[0][0])
    allocator.attach(qmodel)
    if device is not None:
        qmodel.to(device)  # state a data-dependent init created on the CPU
    return qmodel, layers, allocator


@dataclass
class QatParts:
    """What one QAT training step is made of (``run_qat`` trains with it; ``qbench bench`` times it)."""

    qmodel: nn.Module
    layers: Any
    allocator: BitAllocator
    wrapper: TrainingWrapper
    teacher: nn.Module
    #: the method's parameters outside the model (allocator, wrapper) with their optimizer settings
    extra: list[tuple[nn.Parameter, Any]]

    def loss_fn(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.wrapper.loss(self.qmodel, x, y)

    def after_step(self, x: torch.Tensor, y: torch.Tensor, loss: torch.Tensor | float, step: int,
                   epoch: int) -> None:
        """The allocator's step hook; ``loss`` (a detached tensor from the loop) is read only for an
        allocator that has one: the read is a host sync, and fixed allocators learn nothing."""
        if type(self.allocator).after_step is BitAllocator.after_step:
            return
        qmodel = self.qmodel

        def task_loss() -> float:
            with torch.no_grad(), frozen_bn_stats(qmodel):
                return float(torch.nn.functional.cross_entropy(qmodel(x), y))
        self.allocator.after_step(StepContext(qmodel, x, y, float(loss), step, epoch, task_loss))


def qat_parts(method: Method, catalog: Catalog, fp_model: nn.Module, data: DataBundle, target: BitTarget,
              first_last: str, seed: int, device: torch.device | None = None,
              timings: dict[str, float] | None = None) -> QatParts:
    """The method's quantized model (:func:`prepare`), its training wrapper around a frozen FP
    teacher, and the step's loss and allocator hook."""
    qmodel, layers, allocator = prepare(method, catalog, fp_model, data, target, first_last, seed, device, timings)
    wrapper: TrainingWrapper = catalog.wrappers.get(method.wrapper).factory(**method.part_params("wrapper"))
    teacher = frozen_copy(fp_model)
    wrapper.setup(qmodel, teacher)
    extra = [(p, allocator.optim_spec()) for p in allocator.parameters()]
    extra += [(p, wrapper.optim_spec()) for p in wrapper.parameters()]
    return QatParts(qmodel, layers, allocator, wrapper, teacher, extra)


def run_qat(method: Method, catalog: Catalog, fp_model: nn.Module, data: DataBundle, target: BitTarget,
            suite_qat: Any, first_last: str, seed: int, on_epoch: Callable[[EpochStats], None] | None = None,
            deadline: float | None = None, checkpoint: Checkpointer | None = None,
            device: torch.device | None = None) -> QatResult:
    """Build the method's quantized model and fine-tune it (resuming from ``checkpoint``), counting
    the forward passes of the student and its teachers per optimizer step (``costs``).

    The quantizers' learned state is read after calibration and after the last step. The first
    read is the QAT start even when ``checkpoint`` resumes a killed job: the build is seeded, so
    it is the state the first run started from (the checkpoint is loaded inside ``train``)."""
    parts = qat_parts(method, catalog, fp_model, data, target, first_last, seed, device)
    qmodel, layers, allocator, wrapper = parts.qmodel, parts.layers, parts.allocator, parts.wrapper
    start = read_learned(qmodel)
    counter = PassCounter(qmodel, teacher_modules(qmodel, (wrapper, allocator), parts.teacher))

    def after_step(x: torch.Tensor, y: torch.Tensor, loss: torch.Tensor | float, step: int, epoch: int) -> None:
        parts.after_step(x, y, loss, step, epoch)  # an allocator's probe passes belong to this step
        counter.step()
    with counter:
        train(qmodel, parts.loss_fn, data, suite_qat, seed, extra_params=parts.extra, after_step=after_step,
              on_epoch=on_epoch, deadline=deadline, checkpoint=checkpoint, stateful=(allocator, wrapper),
              device=device)
    end = read_learned(qmodel)
    return QatResult(model=wrapper.eval_model(qmodel), layers=layers, allocator=allocator,
                     extra=dict(allocator.report()), learned=summarize_learned(start, end),
                     learned_layers=learned_layers(start, end), costs=counter.report())
