"""The bit audit: what the trained model really uses, measured, not declared.

* Weight levels: distinct values of each layer's hard-quantized weight, per output channel when
  the quantizer is per-channel. Measured bits = ceil(log2(levels)).
* Activation levels: distinct values of each quantized layer input, per sample, on a test batch.
* BitOPs = MACs x b_w x b_a per layer (32 for an FP side), and packed size, by :func:`bitops`
  and :func:`packed_size_bits`: the one convention every method is counted with. Matmuls outside
  Conv2d/Linear layers (attention's QK^T and AV, SDPA, functional linear calls) are audited too,
  as entries of role ``matmul`` at the bits their two inputs run at (32 unless the suite's
  ``attention = "quantized"`` quantized them): :func:`qbench.train.matmul.record_sites`.
* FP work inside quantizers (ASQ's per-sample adapter MLP): each quantizer's optional
  ``inference_macs(input_shape)`` (:meth:`qbench.contract.quant.base.Quantizer.inference_macs`),
  as entries of role ``quantizer`` named ``<layer>.aq`` / ``<layer>.wq`` at 32 x 32 bits. They
  are in ``gbitops`` and never in ``target_gbitops`` (the target allows no FP compute beyond the
  layers'), so they count against the budget (:mod:`qbench.report.budget`).
* Export parity: the eval model against a plain copy holding only the hard weights.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from qbench.contract.layer_info import LayerInfo
from qbench.contract.quant.layers import QuantLayer, quant_layers
from qbench.errors import PluginError
from qbench.train.matmul import record_sites

FP_BITS = 32
#: The role of an audit entry that holds a quantizer's own FP work at inference.
QUANTIZER_ROLE = "quantizer"


@dataclass
class LayerAudit:
    name: str
    role: str
    weight_numel: int
    macs: int
    w_bits: int  # declared by the quantizer (32 when FP)
    a_bits: int
    w_levels: int  # max distinct values per group (tensor or channel); 0 when FP
    w_bits_measured: int
    a_levels: int  # max distinct values per sample; 0 when FP
    a_bits_measured: int
    per_channel: bool
    w_zeros: int = 0  # exact zeros in the deployed weight (pruned by DGMS's zero component, ternary levels, ...)
    #: conv | linear for layers; for role "matmul" entries the op (matmul, sdpa.qk, sdpa.av, linear_fn,
    #: conv_fn), with w_bits / a_bits the bits of its left / right input; for role "quantizer"
    #: entries the quantizer's class
    kind: str = ""


def bits_for_levels(levels: int) -> int:
    """Bits needed to index ``levels`` distinct values."""
    return max(0, math.ceil(math.log2(levels))) if levels > 0 else 0


def count_levels(values: Tensor, groups: int = 1) -> int:
    """Max number of distinct values over ``groups`` equal slices along dim 0."""
    v = values.detach().reshape(groups, -1)
    return max(int(torch.unique(row).numel()) for row in v)


def bitops(layers: list[LayerAudit], measured: bool = True) -> int:
    """Sum over layers of MACs x b_w x b_a."""
    total = 0
    for la in layers:
        bw = la.w_bits_measured if (measured and la.w_levels) else la.w_bits
        ba = la.a_bits_measured if (measured and la.a_levels) else la.a_bits
        total += la.macs * bw * ba
    return total


def target_bitops(layers: list[LayerAudit] | list[dict[str, Any]], w_target: int, a_target: int) -> int:
    """The BitOPs the job's target allows on the same layers: MACs x target b_w x target b_a, with
    body layers at the job's target bits (``a_target`` is 32 for a weight-only method) and the
    first/last layers at the bits they were declared with (the suite's first/last rule: 32 when FP,
    8 under ``8bit``). Quantizers' own FP work (role ``quantizer``) is allowed nothing. Accepts
    audits or their dicts (a row's ``layers``)."""
    total = 0
    for la in layers:
        get = la.get if isinstance(la, dict) else la.__getattribute__
        if get("role") == QUANTIZER_ROLE:
            continue
        if get("role") == "body":
            bw, ba = w_target, a_target
        else:
            bw, ba = get("w_bits"), get("a_bits")
        total += int(get("macs")) * int(bw) * int(ba)
    return total


def packed_size_bits(model: nn.Module, layers: list[LayerAudit]) -> int:
    """Quantized weights at their measured bits, every other parameter and buffer at 32 bits
    (per-channel scales, codebooks and BN included: they ship with the model)."""
    quantized = {la.name: la for la in layers if la.w_levels}
    qweights = set()
    total = 0
    for name, mod in quant_layers(model):
        if name in quantized:
            qweights.add(id(mod.weight))
            total += mod.weight.numel() * quantized[name].w_bits_measured
    for p in model.parameters():
        if id(p) not in qweights:
            total += p.numel() * FP_BITS
    for b in model.buffers():
        if b.dtype.is_floating_point:
            total += b.numel() * FP_BITS
    return total


def _activation_levels(model: nn.Module, x: Tensor, shapes: dict[str, tuple[int, ...]] | None = None
                       ) -> dict[str, int]:
    """Per quantized input: the max over samples of distinct values in that sample. ``shapes``,
    when given, receives each quantized layer's input shape for one sample (batch removed)."""
    levels: dict[str, int] = {}
    hooks = []
    for name, mod in quant_layers(model):
        if shapes is not None:
            def pre(m: nn.Module, inp: tuple[Tensor, ...], _name: str = name) -> None:
                shapes[_name] = tuple(int(d) for d in inp[0].shape[1:])
            hooks.append(mod.register_forward_pre_hook(pre))
        if mod.aq is None:
            continue

        def hook(m: nn.Module, inp: tuple[Tensor, ...], out: Tensor, _name: str = name) -> None:
            levels[_name] = max(levels.get(_name, 0), count_levels(out, out.shape[0]))
        hooks.append(mod.aq.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return levels


def audit_model(model: nn.Module, layers: list[LayerInfo], x: Tensor) -> list[LayerAudit]:
    """Audit every layer in ``layers`` of a (quantized) model, with test inputs ``x``."""
    modules = dict(model.named_modules())
    shapes: dict[str, tuple[int, ...]] = {}
    a_levels = _activation_levels(model, x, shapes)
    out = []
    for info in layers:
        mod = modules[info.name]
        wq = mod.wq if isinstance(mod, QuantLayer) else None
        aq = mod.aq if isinstance(mod, QuantLayer) else None
        w_levels = w_zeros = 0
        per_channel = bool(getattr(wq, "per_channel", False))
        if wq is not None:
            hard = mod.hard_weight()
            w_levels = count_levels(hard, hard.shape[0] if per_channel else 1)
            w_zeros = int((hard == 0).sum())
        al = a_levels.get(info.name, 0)
        out.append(LayerAudit(
            name=info.name, role=info.role, weight_numel=info.weight_numel, macs=info.macs,
            w_bits=wq.bits if wq is not None else FP_BITS, a_bits=aq.bits if aq is not None else FP_BITS,
            w_levels=w_levels, w_bits_measured=bits_for_levels(w_levels) if wq is not None else FP_BITS,
            a_levels=al, a_bits_measured=bits_for_levels(al) if aq is not None else FP_BITS,
            per_channel=per_channel, w_zeros=w_zeros, kind=info.kind))
    for site in record_sites(model, x[:1]):
        out.append(LayerAudit(
            name=site.name, role="matmul", weight_numel=0, macs=site.macs, w_bits=site.bits_left,
            a_bits=site.bits_right, w_levels=0, w_bits_measured=site.bits_left, a_levels=0,
            a_bits_measured=site.bits_right, per_channel=False, kind=site.op))
    out.extend(quantizer_audits(model, [info.name for info in layers], shapes))
    return out


def quantizer_macs(q: nn.Module, input_shape: tuple[int, ...], where: str) -> int:
    """``q.inference_macs(input_shape)``, checked: a non-negative int (0 without the hook)."""
    hook = getattr(q, "inference_macs", None)
    if not callable(hook):
        return 0
    with torch.no_grad():
        macs = hook(tuple(input_shape))
    if isinstance(macs, bool) or not isinstance(macs, int) or macs < 0:
        raise PluginError(f"{type(q).__name__} at {where!r}: inference_macs({tuple(input_shape)}) returned "
                          f"{macs!r}; it must return a non-negative int (FP multiply-accumulates per sample, "
                          "0 when the quantizer runs none at inference: docs/plugin-contract.md).")
    return macs


def quantizer_audits(model: nn.Module, names: list[str], shapes: dict[str, tuple[int, ...]]) -> list[LayerAudit]:
    """One entry of role ``quantizer`` per quantizer of the named layers that runs FP work at
    inference (``inference_macs`` > 0), at 32 x 32 bits, for a layer input of ``shapes[name]``."""
    modules = dict(model.named_modules())
    out = []
    for name in names:
        mod = modules.get(name)
        if not isinstance(mod, QuantLayer) or name not in shapes:
            continue
        for attr in ("aq", "wq"):
            q = getattr(mod, attr, None)
            macs = quantizer_macs(q, shapes[name], f"{name}.{attr}") if q is not None else 0
            if macs:
                out.append(LayerAudit(
                    name=f"{name}.{attr}", role=QUANTIZER_ROLE, weight_numel=0, macs=macs, w_bits=FP_BITS,
                    a_bits=FP_BITS, w_levels=0, w_bits_measured=FP_BITS, a_levels=0, a_bits_measured=FP_BITS,
                    per_channel=False, kind=type(q).__name__))
    return out


def summarize(model: nn.Module, audits: list[LayerAudit], target: tuple[int, int] | None = None) -> dict[str, Any]:
    """Row fields: declared and measured bits (parameter-weighted and plain means over quantized
    layers), the deployed weights' sparsity (fraction of exact zeros over quantized layers; None
    when no weight is quantized), BitOPs, packed size, and whether every layer kept within its
    declared levels. With ``target`` = (w, a) target bits (a = 32 for a weight-only method), also
    ``target_gbitops`` (:func:`target_bitops`); without it,
    :func:`qbench.report.budget.flag_row` fills it from the row's ``layers``."""
    qw = [la for la in audits if la.w_levels]
    qa = [la for la in audits if la.a_levels]

    def pw(attr: str) -> float:
        n = sum(la.weight_numel for la in qw)
        return sum(getattr(la, attr) * la.weight_numel for la in qw) / n if n else float(FP_BITS)

    def mean(items: list[LayerAudit], attr: str) -> float:
        return sum(getattr(la, attr) for la in items) / len(items) if items else float(FP_BITS)

    violations = [f"{la.name}: {la.w_levels} weight levels > 2^{la.w_bits}" for la in qw if la.w_levels > 2 ** la.w_bits]
    violations += [f"{la.name}: {la.a_levels} activation levels > 2^{la.a_bits}" for la in qa
                   if la.a_levels > 2 ** la.a_bits]
    out = {
        "w_bits": round(pw("w_bits"), 4), "w_bits_measured": round(pw("w_bits_measured"), 4),
        "w_bits_layer_mean": round(mean(qw, "w_bits"), 4),
        "a_bits": round(mean(qa, "a_bits"), 4) if qa else FP_BITS,
        "a_bits_measured": round(mean(qa, "a_bits_measured"), 4) if qa else FP_BITS,
        "w_sparsity": round(sum(la.w_zeros for la in qw) / sum(la.weight_numel for la in qw), 4) if qw else None,
        "gbitops": bitops(audits) / 1e9, "size_kb": packed_size_bits(model, audits) / 8 / 1024,
        "levels_ok": not violations, "level_violations": "; ".join(violations),
        "layers": [asdict(la) for la in audits],
    }
    if target is not None:
        out["target_gbitops"] = target_bitops(audits, int(target[0]), int(target[1])) / 1e9
    return out


def deployed_copy(model: nn.Module) -> nn.Module:
    """A copy whose quantized layers hold their hard weights as plain weights and no weight
    quantizer: what a deployment would run (activation quantizers stay)."""
    dep = copy.deepcopy(model)
    for _, mod in quant_layers(dep):
        if mod.wq is not None:
            mod.deploy()
    return dep.eval()


@torch.no_grad()
def export_parity(model: nn.Module, x: Tensor) -> float:
    """Max |logit difference| between the eval model and its deployed copy (0 for a sound export)."""
    model.eval()
    return float((model(x) - deployed_copy(model)(x)).abs().max())
