"""weights.safetensors (codes packed at their bit-width, scales, LUTs, the FP rest) and manifest.json.

Packed codes: little-endian bit order within each byte (code i takes bits [i*b, i*b + b) of the
stream), one stream per layer, padded to a whole byte. Per layer ``L`` the file holds

* uniform: ``L.codes`` (uint8 stream), ``L.scale`` and ``L.zero_point`` (float32, one per group:
  the tensor, or each output channel): weight = (codes - zero_point) x scale. The zero point is an
  integer, or a half integer for a grid without a zero level (DoReFa's odd symmetric levels);
* lut: ``L.codes`` and ``L.lut`` ([groups, levels] float32): weight = lut[group, codes];
* float: ``L.weight`` (a weight with more levels than a LUT holds).

Every other floating tensor of the model (biases, BatchNorm, FP first/last layers, embeddings,
activation quantizers' parameters) is stored as float32, as the audit counts it.
"""
from __future__ import annotations

import json
from typing import Any

import torch
from torch import Tensor, nn

from qbench.contract.quant.layers import quant_layers
from qbench.deploy.analyze import LayerPlan, WeightPlan


def pack_bits(codes: Tensor, bits: int) -> Tensor:
    """Pack non-negative integer codes (< 2**bits) into a uint8 stream, LSB first."""
    c = codes.reshape(-1).long()
    shifts = torch.arange(bits)
    stream = ((c[:, None] >> shifts) & 1).reshape(-1)
    pad = (-stream.numel()) % 8
    stream = torch.cat([stream, stream.new_zeros(pad)]).reshape(-1, 8)
    return (stream << torch.arange(8)).sum(1).to(torch.uint8)


def unpack_bits(packed: Tensor, bits: int, count: int) -> Tensor:
    stream = ((packed.long()[:, None] >> torch.arange(8)) & 1).reshape(-1)[: count * bits]
    return (stream.reshape(count, bits) << torch.arange(bits)).sum(1)


def uniform_codes(w: WeightPlan) -> tuple[Tensor, Tensor, Tensor]:
    """(codes >= 0 [groups, K], zero_point [groups], scale [groups]) of a uniform plan, so that
    weight = (codes - zero_point) x scale with codes < 2**w.bits."""
    g = w.int_scale.numel()
    c = w.int_codes.long().reshape(g, -1)
    cmin = c.min(1, keepdim=True).values
    odd = bool((c % 2 != 0).all()) and int((c.max(1).values - cmin[:, 0]).max()) + 1 > 2
    step = 2 if odd else 1
    k = (c - cmin) // step
    return k, (-cmin[:, 0].double() / step).float(), (w.int_scale.double() * step).float()


def packed_tensors(model: nn.Module, plans: list[LayerPlan]) -> dict[str, Tensor]:
    """The tensors of weights.safetensors (see the module docstring)."""
    out: dict[str, Tensor] = {}
    skip: set[str] = set()
    for (name, _), p in zip(quant_layers(model), plans):
        w = p.weight
        if w is None:
            continue
        skip.add(f"{name}.weight")
        skip.add(f"{name}.wq.")
        if w.scheme == "uniform":
            k, zp, scale = uniform_codes(w)
            out[f"{name}.codes"] = pack_bits(k, w.bits)
            out[f"{name}.scale"], out[f"{name}.zero_point"] = scale, zp
        elif w.scheme == "lut":
            out[f"{name}.codes"] = pack_bits(w.lut_codes, w.bits)
            out[f"{name}.lut"] = w.lut.float()
        else:
            out[f"{name}.weight"] = model.get_submodule(name).hard_weight().float().contiguous()
    seen: set[int] = set()  # a module reachable under two names (ASQ's adapter) is stored once
    for key, t in model.state_dict(keep_vars=True).items():
        if key in skip or any(key.startswith(s) for s in skip if s.endswith(".")):
            continue
        if torch.is_tensor(t) and t.dtype.is_floating_point and id(t) not in seen:
            seen.add(id(t))
            out[key] = t.detach().float().cpu().clone().contiguous()
    return out


def unpack_weight(tensors: dict[str, Tensor], name: str, layer: dict[str, Any]) -> Tensor:
    """Rebuild one layer's weight from weights.safetensors and its manifest entry (a check of the format)."""
    w, shape = layer["weight"], layer["shape"]
    if w["scheme"] == "float":
        return tensors[f"{name}.weight"]
    count = 1
    for d in shape:
        count *= d
    codes = unpack_bits(tensors[f"{name}.codes"], w["bits"], count)
    if w["scheme"] == "uniform":
        scale, zp = tensors[f"{name}.scale"], tensors[f"{name}.zero_point"]
        g = scale.numel()
        return ((codes.reshape(g, -1).double() - zp.double()[:, None]) * scale.double()[:, None]).float().reshape(shape)
    lut = tensors[f"{name}.lut"]
    return torch.gather(lut, 1, codes.reshape(lut.shape[0], -1)).reshape(shape)


def manifest(plans: list[LayerPlan], model: nn.Module, info: dict[str, Any]) -> dict[str, Any]:
    """manifest.json: per layer its bits, scheme and levels; ``info`` (job, sizes, checks) on top."""
    layers = []
    for (name, layer), p in zip(quant_layers(model), plans):
        entry: dict[str, Any] = {"name": name, "kind": p.kind, "shape": list(layer.weight.shape),
                                 "integer_op": p.integer}
        w = p.weight
        if w is None:
            entry["weight"] = {"scheme": "fp32"}
        else:
            entry["weight"] = {"scheme": w.scheme, "per_channel": w.per_channel, "bits": w.bits,
                               "levels": w.levels, "source": w.source, "note": w.note}
            if w.scheme == "uniform":
                _, zp, scale = uniform_codes(w)
                entry["weight"].update({"scale": scale.tolist(), "zero_point": zp.tolist()})
            elif w.scheme == "lut" and w.lut.shape[0] == 1:
                entry["weight"]["lut"] = w.lut[0].tolist()
        a = p.act
        entry["activation"] = {"scheme": a.scheme if a.scheme != "none" else "fp32", "bits": a.bits, "note": a.note}
        if a.scheme == "uniform":
            entry["activation"].update({"scale": a.scale, "zero_point": a.zero_point, "qmin": 0, "qmax": a.qmax,
                                        "signed": a.signed, "levels": a.qmax + 1})
        if a.scheme == "steps":
            entry["activation"].update({"thresholds": a.thresholds.tolist(), "levels": a.levels.tolist(),
                                        "signed": a.signed})
            if a.scale > 0:  # uniform levels: codes = the step count, value = (code - zero_point) x scale
                entry["activation"].update({"scale": a.scale, "zero_point": a.zero_point})
        layers.append(entry)
    return {**info, "layers": layers}


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=False, default=str)
