"""What each quantized layer deploys as, read from what the audit sees.

* Weights: the hard weight (what evaluation and the audit use). A quantizer's ``export()`` codes,
  scale, zero point or LUT are used when they reproduce it; otherwise the host infers them from
  the hard weight's distinct values: a uniform grid (integer codes x scale, per tensor or per
  channel) when the levels are evenly spaced, else codes into a lookup table of the levels.
* Activations: the input quantizer is probed on real layer inputs and on a ramp. When it is an
  elementwise uniform grid with an integer zero point, it deploys as QuantizeLinear (scale, zero
  point, clipped to its 2^bits codes); otherwise its own forward is traced into ONNX ops
  ("traced": dynamic scales, learned non-uniform thresholds, non-integer offsets).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from qbench.contract.quant.layers import QuantLayer, quant_layers
from qbench.deploy.steps import step_function
from qbench.train.audit import bits_for_levels

_REL = 1e-5  # reconstruction tolerance of a grid or LUT, relative to the layer's max |w|


@dataclass
class WeightPlan:
    scheme: str  # "uniform" | "lut" | "float"
    per_channel: bool
    bits: int  # packed code width: ceil(log2 of the levels or grid span), the audit's measured bits
    levels: int  # max distinct values per group
    source: str  # "export()" when the quantizer's export() reproduced the hard weight, else "inferred"
    int_codes: Tensor | None = None  # uniform: int8, weight = int_codes * int_scale (zero point 0)
    int_scale: Tensor | None = None  # one value per group (shape [groups])
    lut: Tensor | None = None  # lut: [groups, L]
    lut_codes: Tensor | None = None  # lut: uint8 index into the group's LUT, shape of the weight
    note: str = ""

    def weight(self, shape: torch.Size) -> Tensor:
        """The weight this plan deploys (float32)."""
        if self.scheme == "uniform":
            g = self.int_scale.numel()
            return (self.int_codes.float().reshape(g, -1) * self.int_scale.reshape(g, 1)).reshape(shape)
        if self.scheme == "lut":
            g = self.lut.shape[0]
            return torch.gather(self.lut, 1, self.lut_codes.long().reshape(g, -1)).reshape(shape)
        raise ValueError("a float weight has no codes")


@dataclass
class ActPlan:
    scheme: str  # "none" | "uniform" | "steps" | "traced"
    bits: int = 32
    scale: float = 0.0
    zero_point: int = 0
    qmax: int = 0  # codes 0..qmax (uint8)
    signed: bool = False
    note: str = ""
    thresholds: Tensor | None = None  # steps: x >= thresholds[k] moves the output to levels[k + 1]
    levels: Tensor | None = None

    @property
    def lo(self) -> float:
        return (0 - self.zero_point) * self.scale

    @property
    def hi(self) -> float:
        return (self.qmax - self.zero_point) * self.scale


@dataclass
class LayerPlan:
    name: str
    kind: str  # conv | linear
    weight: WeightPlan | None
    act: ActPlan
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def integer(self) -> bool:
        """Both sides on integer grids: the layer runs as ConvInteger / MatMulInteger."""
        uniform_input = self.act.scheme == "uniform" or (self.act.scheme == "steps" and self.act.scale > 0)
        return uniform_input and self.weight is not None and self.weight.scheme == "uniform"


# -- weights ------------------------------------------------------------------------------------
def _grid(values: Tensor) -> tuple[Tensor, float] | None:
    """Integer codes and step of a 1-D set of values on an evenly spaced grid through 0 (the step
    halved when the grid sits at half steps, as DoReFa's odd symmetric levels do); else None."""
    lv = torch.unique(values.double())
    top = float(lv.abs().max())
    if top == 0:
        return torch.zeros_like(values, dtype=torch.int64), 1.0
    if lv.numel() == 1:
        step = top
    else:
        step = float(lv.diff().min())
    for m in (1, 2):
        s = step / m
        codes = torch.round(values.double() / s)
        if codes.abs().max() > 127:
            return None
        # least-squares step over the codes, then the grid must reproduce every value
        s = float((codes * values.double()).sum() / (codes * codes).sum().clamp_min(1e-30))
        if float((codes * s - values.double()).abs().max()) <= _REL * top:
            return codes.long(), s
    return None


def _from_export(wq: nn.Module, weight: Tensor, hard: Tensor, groups: int) -> WeightPlan | None:
    """The plan from the quantizer's own export(), when it reproduces the hard weight."""
    try:
        ex = wq.export(weight)
    except Exception:
        return None
    if not isinstance(ex, dict) or "codes" not in ex:
        return None
    top = float(hard.abs().max()) or 1.0
    codes = ex["codes"].detach().cpu()
    lut = ex.get("lut", ex.get("codebook"))
    if "scale" in ex:
        scale = ex["scale"].detach().cpu().double().reshape(-1)
        zp = ex.get("zero_point")
        zp = zp.detach().cpu().long().reshape(-1) if zp is not None else torch.zeros(1, dtype=torch.long)
        g = scale.numel()
        if g not in (1, groups) and g != hard.shape[0]:
            return None
        c = codes.long().reshape(g, -1) - zp.reshape(-1, 1)
        if c.abs().max() > 127 or float((c * scale.reshape(-1, 1) - hard.double().reshape(g, -1)).abs().max()) > _REL * top:
            return None
        lv = max(int(torch.unique(r).numel()) for r in c)
        span = int((c.max(1).values - c.min(1).values).max()) + 1
        return WeightPlan("uniform", g > 1, max(1, bits_for_levels(span)), lv, "export()",
                          int_codes=c.to(torch.int8).reshape(hard.shape), int_scale=scale.float())
    if lut is not None:
        lut = lut.detach().cpu().float()
        lut2 = lut.reshape(1, -1) if lut.dim() == 1 else lut.reshape(lut.shape[0], -1)
        g = lut2.shape[0]
        rebuilt = torch.gather(lut2, 1, codes.long().reshape(g, -1)) if g > 1 else lut2[0][codes.long().reshape(1, -1)]
        if lut2.shape[1] > 256 or float((rebuilt - hard.reshape(g, -1)).abs().max()) > _REL * top:
            return None
        lv = max(int(torch.unique(r).numel()) for r in codes.reshape(g, -1))
        return WeightPlan("lut", g > 1, max(1, bits_for_levels(lut2.shape[1])), lv, "export()",
                          lut=lut2, lut_codes=codes.to(torch.uint8).reshape(hard.shape))
    return None


def _uniform_plan(hard: Tensor, groups: int, levels: int) -> WeightPlan | None:
    """Integer codes x scale, per tensor when the whole tensor shares one grid, else per channel."""
    for g in ([1] if groups == 1 else []) + [hard.shape[0]]:
        fits = [_grid(r) for r in hard.reshape(g, -1)]
        if all(f is not None for f in fits):
            codes = torch.stack([f[0] for f in fits])
            scale = torch.tensor([f[1] for f in fits], dtype=torch.float32)
            span = int((codes.max(1).values - codes.min(1).values).max()) + 1
            # the packed width: the grid's span in steps of its levels (half steps count once)
            step = 2 if bool((codes % 2 != 0).all()) and span > 2 else 1
            bits = max(1, bits_for_levels((span - 1) // step + 1))
            if bits > max(1, bits_for_levels(levels)):  # levels on a fine grid (powers of two): a LUT
                return None
            return WeightPlan("uniform", g > 1, bits, levels, "inferred",
                              int_codes=codes.to(torch.int8).reshape(hard.shape), int_scale=scale)
    return None


def plan_weight(layer: QuantLayer) -> WeightPlan:
    """How one layer's hard weight deploys (see the module docstring). A LUT whose levels are
    evenly spaced deploys as a uniform grid (integer kernels)."""
    hard = layer.hard_weight().detach().float().cpu()
    per_channel = bool(getattr(layer.wq, "per_channel", False))
    groups = hard.shape[0] if per_channel else 1
    rows = hard.reshape(groups, -1)
    levels = max(int(torch.unique(r).numel()) for r in rows)
    plan = _from_export(layer.wq, layer.weight.detach(), hard, groups)
    if plan is not None and plan.scheme == "uniform":
        return plan
    uniform = _uniform_plan(hard, groups, levels)
    if uniform is not None:
        if plan is not None:
            uniform.source, uniform.note = "export()", "export() gave a LUT whose levels are evenly spaced"
        elif "codes" in _safe_keys(layer.wq, layer.weight):
            uniform.note = "export() did not reproduce the hard weight"
        return uniform
    if plan is not None:
        return plan
    note = "" if "codes" not in _safe_keys(layer.wq, layer.weight) else "export() did not reproduce the hard weight"
    lv = [torch.unique(r) for r in rows]
    width = max(int(v.numel()) for v in lv)
    if width > 256:
        return WeightPlan("float", per_channel, 32, levels, "inferred", note=f"{width} levels: more than a LUT holds")
    lut = torch.stack([torch.cat([v, v[-1:].expand(width - v.numel())]) for v in lv])
    codes = torch.stack([torch.searchsorted(v, r) for v, r in zip(lv, rows)])
    return WeightPlan("lut", per_channel, max(1, bits_for_levels(width)), levels, "inferred",
                      lut=lut, lut_codes=codes.to(torch.uint8).reshape(hard.shape), note=note)


def _safe_keys(wq: nn.Module, w: Tensor) -> set[str]:
    try:
        return set(wq.export(w))
    except Exception:
        return set()


# -- activations --------------------------------------------------------------------------------
def _uniform_act(aq: nn.Module, xs: Tensor) -> ActPlan | str:
    """An ActPlan when ``aq`` is an elementwise uniform grid with an integer zero point on the
    probes, else the reason it is not."""
    lo, hi = float(xs.min()), float(xs.max())
    with torch.no_grad():
        y_x = aq(xs).float()
        # a ramp wide enough to reach both clipping ends: 2^(bits+1) steps beyond the data
        seen = torch.unique(y_x)
        step = float(seen.diff().min()) if seen.numel() > 1 else max(hi - lo, 1e-6)
        ext = max(hi - lo, abs(lo), abs(hi), 2 ** (int(getattr(aq, "bits", 8)) + 1) * step)
        ramp = torch.linspace(lo - ext, hi + ext, xs.numel()).reshape(xs.shape)
        y_r = aq(ramp).float()
    why = _grid_act(aq, xs, ramp, y_x, y_r, seen)
    if isinstance(why, ActPlan):
        return why
    got = step_function(aq, xs, ramp, y_r, y_x)
    if isinstance(got, str):
        return f"{why}; {got}"
    plan = ActPlan("steps", bits=int(getattr(aq, "bits", 8)), signed=bool(getattr(aq, "signed", False)),
                   thresholds=got[0], levels=got[1], note=why)
    lv = got[1].double()
    s = float(lv.diff().min()) if lv.numel() > 1 else 0.0
    if s > 0:  # uniform output levels behind learned thresholds (N2UQ): the step count is the code
        k, z = (lv - lv[0]) / s, -float(lv[0]) / s
        if torch.allclose(k, torch.arange(lv.numel(), dtype=torch.float64), atol=1e-3) and abs(z - round(z)) < 1e-3 \
                and 0 <= round(z) <= 255 and lv.numel() <= 256:
            plan.scale, plan.zero_point, plan.qmax = s, int(round(z)), lv.numel() - 1
    return plan


def _grid_act(aq: nn.Module, xs: Tensor, ramp: Tensor, y_x: Tensor, y_r: Tensor, seen: Tensor) -> ActPlan | str:
    # float -> double is exact and one-to-one: the union of the two level sets, without a third sort
    lv = torch.unique(torch.cat([seen, torch.unique(y_r)])).double()
    if lv.numel() < 2 or lv.numel() > 256:
        return f"{lv.numel()} output levels"
    s = float(lv.diff().min())
    k = (lv - lv[0]) / s
    if float((k - k.round()).abs().max()) > 1e-3:
        return "levels not evenly spaced (non-uniform grid)"
    z = -float(lv[0]) / s
    if abs(z - round(z)) > 1e-3:
        return f"zero point {z:.4f} is not an integer (an offset grid)"
    z = int(round(z))
    qmax = z + int(round(float(lv[-1]) / s))
    if not (0 <= z <= 255 and 0 < qmax <= 255):
        return "codes do not fit uint8"
    if qmax + 1 > 2 ** int(getattr(aq, "bits", 8)):
        return f"levels not evenly spaced ({lv.numel()} levels need a grid of {qmax + 1}: a non-uniform grid)"
    plan = ActPlan("uniform", bits=int(getattr(aq, "bits", 8)), scale=s, zero_point=z, qmax=qmax,
                   signed=bool(getattr(aq, "signed", False)))
    for x, y in ((xs, y_x), (ramp, y_r)):
        ours = fake_quant(x, plan)
        bad = (ours - y).abs() > 1e-5 * max(abs(plan.lo), abs(plan.hi), 1.0)
        if int(bad.sum()) > max(2, int(1e-5 * x.numel())) or float((ours - y).abs().max()) > 1.01 * s:
            return f"not an elementwise static grid ({int(bad.sum())} of {x.numel()} values differ)"
    return plan


def fake_quant(x: Tensor, p: ActPlan) -> Tensor:
    """What Clip + QuantizeLinear + DequantizeLinear compute (round half to even, as ONNX does)."""
    q = torch.clamp(torch.round(torch.clamp(x, p.lo, p.hi) / p.scale) + p.zero_point, 0, p.qmax)
    return (q - p.zero_point) * p.scale


def layer_inputs(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """Each quantized layer's raw input (before its activation quantizer) on ``x``."""
    seen: dict[str, Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, inp, _n=n: seen.setdefault(_n, inp[0].detach().cpu()))
             for n, m in quant_layers(model)]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


def plan_model(model: nn.Module, x: Tensor) -> list[LayerPlan]:
    """A plan for every quantized layer of a trained (eval) model; ``x``: a test batch for probing."""
    inputs = layer_inputs(model, x)
    plans = []
    for name, layer in quant_layers(model):
        kind = "conv" if isinstance(layer, nn.Conv2d) else "linear"
        wplan = plan_weight(layer) if layer.wq is not None else None
        if layer.aq is None:
            aplan = ActPlan("none")
        else:
            try:
                got = _uniform_act(layer.aq.eval(), inputs[name])
            except Exception as exc:  # a quantizer that only takes its layer's input shape
                got = f"probe failed ({type(exc).__name__})"
            aplan = got if isinstance(got, ActPlan) else ActPlan("traced", bits=int(layer.aq.bits), note=got)
        plans.append(LayerPlan(name, kind, wplan, aplan))
    return plans
