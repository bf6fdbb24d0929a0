"""Find a model's quantizable layers and quantize them.

A plain ``nn.Conv2d`` / ``nn.Linear`` is swapped for its :class:`QuantConv2d` / :class:`QuantLinear`
twin. Any subclass (timm's Conv2dSame, StdConv2d, ScaledStdConv2d, Linear...) is quantized in
place by :func:`qbench.contract.quant.layers.wrap_layer`: it keeps its own forward (padding,
weight standardisation), its input is quantized, and so is the weight it really computes with.
With the suite's ``attention = "quantized"`` (:data:`qbench.train.matmul.ATTENTION`), the inputs of
the activation x activation matmuls are quantized too (:mod:`qbench.train.matmul`).

The first layer (the stem) and the last (the classifier) follow the suite's first/last-layer
rule, applied here for every method alike so that no plugin can change it silently.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from qbench.contract.bits import LayerBits
from qbench.contract.layer_info import LayerInfo
from qbench.contract.quant.base import ActivationQuantizer, WeightQuantizer
from qbench.contract.quant.layers import QuantConv2d, QuantLinear, wrap_layer
from qbench.errors import QbenchError
from qbench.train.matmul import ATTENTION, attach_matmul_quantizers


def _classifier_name(model: nn.Module) -> str | None:
    get = getattr(model, "get_classifier", None)
    if get is None:
        return None
    head = get()
    for name, m in model.named_modules():
        if m is head:
            return name
    return None


def find_layers(model: nn.Module, sample: Tensor) -> list[LayerInfo]:
    """All ``nn.Conv2d`` / ``nn.Linear`` layers that run in a forward pass of ``sample``.

    MACs are measured with forward hooks on one sample, so they follow what the model really
    computes (token counts in a ViT, spatial sizes in a CNN). Layers that never run are skipped.
    """
    macs: dict[str, int] = {}
    order: list[str] = []
    hooks = []

    def hook(name: str):
        def fn(mod: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
            per_out = out.numel() // out.shape[0]
            if isinstance(mod, nn.Conv2d):
                k = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            else:
                k = mod.in_features
            if name not in macs:
                order.append(name)
                macs[name] = 0
            macs[name] += per_out * k
        return fn

    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(sample[:1])
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if not order:
        raise QbenchError(f"Model {type(model).__name__} has no Conv2d or Linear layer to quantize.")
    modules = dict(model.named_modules())
    last = _classifier_name(model)
    if last not in macs:
        last = order[-1]
    infos = []
    for name in order:
        m = modules[name]
        role = "first" if name == order[0] else "last" if name == last else "body"
        conv = isinstance(m, nn.Conv2d)
        infos.append(LayerInfo(
            name=name, kind="conv" if conv else "linear", role=role,
            weight_numel=m.weight.numel(),
            out_channels=m.out_channels if conv else m.out_features,
            in_channels=m.in_channels if conv else m.in_features,
            macs=macs[name]))
    return infos


WeightFactory = Callable[[int, nn.Module], WeightQuantizer]
ActFactory = Callable[[int, nn.Module], ActivationQuantizer]


def quantize_model(model: nn.Module, plan: dict[str, LayerBits], make_wq: WeightFactory | None,
                   make_aq: ActFactory | None) -> nn.Module:
    """Quantize each planned layer of ``model`` (in place): a plain Conv2d / Linear is replaced by its
    quantized twin, a subclass is wrapped keeping its own forward.

    :param plan: layer name -> bits; a ``None`` side, or a missing factory, stays FP.
    """
    modules = dict(model.named_modules())
    for name, bits in plan.items():
        m = modules[name]
        wq = make_wq(bits.w, m) if (bits.w is not None and make_wq is not None) else None
        aq = make_aq(bits.a, m) if (bits.a is not None and make_aq is not None) else None
        if wq is None and aq is None:
            continue
        if type(m) in (nn.Conv2d, nn.Linear):
            cls = QuantConv2d if isinstance(m, nn.Conv2d) else QuantLinear
            new = cls.from_float(m, wq, aq, name)
            parent_name, _, child = name.rpartition(".")
            parent = modules[parent_name] if parent_name else model
            setattr(parent, child, new)
        else:
            wrap_layer(m, wq, aq, name)
            if wq is not None and m._transforms_weight:
                wq.initialize(m.effective_weight())  # from the weight it computes with, not the raw one
    attention = ATTENTION.get()
    if attention is not None and attention[0] == "quantized" and make_aq is not None:
        attach_matmul_quantizers(model, make_aq, attention[1])
    return model
