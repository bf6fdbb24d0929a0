"""Build a method's quantized model from the FP checkpoint, then fine-tune it.

This is where the three parts of a method meet: the allocator decides bits, the quantizers are
attached, the training wrapper computes the loss, and a learning allocator acts after each step.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from .allocation import AllocationContext, BitAllocator, StepContext
from .bits import BitTarget, LayerBits
from .catalog import Catalog
from .data.bundle import DataBundle, iterate_batches
from .errors import PluginError
from .method import Method
from .quant.layers import quant_layers
from .surgery import LayerInfo, find_layers, first_last_bits, quantize_model
from .train import EpochStats, frozen_bn_stats, train
from .wrappers import TrainingWrapper

CALIB_BATCHES = 4


@dataclass
class QatResult:
    model: nn.Module  # what is evaluated: wrapper.eval_model(qmodel)
    layers: list[LayerInfo]
    allocator: BitAllocator
    extra: dict[str, Any] = field(default_factory=dict)


def frozen_copy(model: nn.Module) -> nn.Module:
    fp = copy.deepcopy(model).eval()
    for p in fp.parameters():
        p.requires_grad_(False)
    return fp


def prepare(method: Method, catalog: Catalog, fp_model: nn.Module, data: DataBundle, target: BitTarget,
            first_last: str, seed: int) -> tuple[nn.Module, list[LayerInfo], BitAllocator]:
    """The quantized model (quantizers attached and initialised) and its allocator."""
    torch.manual_seed(seed)
    qmodel = copy.deepcopy(fp_model)
    layers = find_layers(qmodel, data.sample())
    params_w, params_a = method.part_params("weight"), method.part_params("activation")
    wq_entry = catalog.quantizers.get(method.weight_quantizer) if method.weight_quantizer else None
    aq_entry = catalog.quantizers.get(method.activation_quantizer) if method.activation_quantizer else None
    make_wq = (lambda bits, layer: wq_entry.factory(bits=bits, layer=layer, **params_w)) if wq_entry else None
    make_aq = (lambda bits, layer: aq_entry.factory(bits=bits, layer=layer, **params_a)) if aq_entry else None

    gen = torch.Generator().manual_seed(seed)
    calib = [b for _, b in zip(range(CALIB_BATCHES), iterate_batches(data.train, 64, True, gen))]
    allocator: BitAllocator = catalog.allocators.get(method.allocator).factory(**method.part_params("allocator"))
    body = [l for l in layers if l.role == "body"]
    ctx = AllocationContext(fp_model=fp_model, calib_batches=calib, make_weight_quantizer=make_wq, seed=seed,
                            modules=dict(fp_model.named_modules()))
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
    for _, layer in quant_layers(qmodel):
        if layer.wq is not None:
            layer.wq.initialize(layer.weight)
    # Activation quantizers initialise from the first batch as training will see it (BN on batch
    # statistics: quantized weights change every layer's scale), without moving running statistics.
    qmodel.train()
    with torch.no_grad(), frozen_bn_stats(qmodel):
        qmodel(calib[0][0])
    allocator.attach(qmodel)
    return qmodel, layers, allocator


def run_qat(method: Method, catalog: Catalog, fp_model: nn.Module, data: DataBundle, target: BitTarget,
            suite_qat: Any, first_last: str, seed: int, on_epoch: Callable[[EpochStats], None] | None = None,
            deadline: float | None = None) -> QatResult:
    qmodel, layers, allocator = prepare(method, catalog, fp_model, data, target, first_last, seed)
    wrapper: TrainingWrapper = catalog.wrappers.get(method.wrapper).factory(**method.part_params("wrapper"))
    wrapper.setup(qmodel, frozen_copy(fp_model))

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return wrapper.loss(qmodel, x, y)

    def after_step(x: torch.Tensor, y: torch.Tensor, loss: float, step: int, epoch: int) -> None:
        def task_loss() -> float:
            with torch.no_grad(), frozen_bn_stats(qmodel):
                return float(torch.nn.functional.cross_entropy(qmodel(x), y))
        allocator.after_step(StepContext(qmodel, x, y, loss, step, epoch, task_loss))

    extra = list(allocator.parameters()) + list(wrapper.parameters())
    train(qmodel, loss_fn, data, suite_qat, seed, extra_params=extra, after_step=after_step,
          on_epoch=on_epoch, deadline=deadline)
    return QatResult(model=wrapper.eval_model(qmodel), layers=layers, allocator=allocator,
                     extra=dict(allocator.report()))
