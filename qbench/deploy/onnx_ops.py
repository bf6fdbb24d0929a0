"""The ONNX quantization ops the deploy graph is made of, each a torch autograd Function whose
forward computes exactly what its ``symbolic`` (the ONNX op) computes: the deploy model runs in
torch as a reference, and exports to those ops (qbench/deploy/graph.py uses them).

* ``Quantize``: ``Clip -> QuantizeLinear`` to uint8 codes with an integer zero point.
* ``Dequantize``: ``DequantizeLinear`` of int8 weight codes (per tensor or per channel).
* ``FakeQuant``: a uniform grid in plain ops (``Clip, Div, Round, Mul``).
* ``Rescale``: an integer op's int32 accumulator times its output scale, ``Cast -> Mul``.
* ``Steps`` / ``StepCodes``: a static step function, as levels (``Gather``) or as uint8 codes.
* ``ConvInteger`` / ``MatMulInteger``: int32 accumulation of uint8 inputs and int8 weights.
* ``Lut``: weights looked up in a per-channel table (``GatherElements``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class Quantize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, lo: Tensor, hi: Tensor, scale: Tensor, zp: Tensor) -> Tensor:  # noqa: ANN001
        q = torch.round(torch.clamp(x, float(lo), float(hi)) / scale) + zp.float()
        return torch.clamp(q, 0, 255).to(torch.uint8)

    @staticmethod
    def symbolic(g, x, lo, hi, scale, zp):  # noqa: ANN001, ANN205
        return g.op("QuantizeLinear", g.op("Clip", x, lo, hi), scale, zp)


class Dequantize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, scale: Tensor, zp: Tensor, axis: int) -> Tensor:  # noqa: ANN001
        shape = [1] * q.dim()
        if scale.numel() > 1:
            shape[axis] = -1
        z = 0.0 if zp is None else zp.double()
        return (q.double() - z).mul(scale.double().reshape(shape)).float()

    @staticmethod
    def symbolic(g, q, scale, zp, axis):  # noqa: ANN001, ANN205
        if zp is None or (hasattr(zp, "node") and zp.node().mustBeNone()):  # zero: per-axis scales take no zp
            return g.op("DequantizeLinear", q, scale, axis_i=axis)
        return g.op("DequantizeLinear", q, scale, zp, axis_i=axis)


class FakeQuant(torch.autograd.Function):
    """A uniform input grid in plain ops (Clip, Div, Round, Mul) for a layer whose weight is not on
    an integer grid: a QuantizeLinear/DequantizeLinear pair there would let onnxruntime re-quantize
    the float weight to int8 (its WeightBiasQuantization pass), which changes the LUT's levels."""

    @staticmethod
    def forward(ctx, x: Tensor, lo: Tensor, hi: Tensor, scale: Tensor) -> Tensor:  # noqa: ANN001
        return torch.round(torch.clamp(x, float(lo), float(hi)) / scale) * scale

    @staticmethod
    def symbolic(g, x, lo, hi, scale):  # noqa: ANN001, ANN205
        return g.op("Mul", g.op("Round", g.op("Div", g.op("Clip", x, lo, hi), scale)), scale)


class Rescale(torch.autograd.Function):
    """An integer op's int32 accumulator times its output scale, as Cast + Mul (the pattern of
    onnxruntime's own dynamic quantization). Not DequantizeLinear: onnxruntime's
    QDQPropagationTransformer moves a DequantizeLinear of int32 forward past Reshape/Transpose by
    inserting a QuantizeLinear whose default output type is uint8, which clips the accumulator to
    0..255 (found on MobileViT, whose patch unfolding follows a conv; all 10,000 samples moved)."""

    @staticmethod
    def forward(ctx, acc: Tensor, scale: Tensor) -> Tensor:  # noqa: ANN001
        return (acc.double() * scale.double()).float()  # = float32(acc) x scale, rounded once

    @staticmethod
    def symbolic(g, acc, scale):  # noqa: ANN001, ANN205
        return g.op("Mul", g.op("Cast", acc, to_i=1), scale)  # 1: FLOAT


class Steps(torch.autograd.Function):
    """A static step function: levels[#(thresholds <= x)] (N2UQ, APoT, offset grids)."""

    @staticmethod
    def forward(ctx, x: Tensor, thr: Tensor, levels: Tensor) -> Tensor:  # noqa: ANN001
        return levels[(x.unsqueeze(-1) >= thr).sum(-1)]

    @staticmethod
    def symbolic(g, x, thr, levels):  # noqa: ANN001, ANN205
        last = g.op("Constant", value_t=torch.tensor([-1], dtype=torch.int64))
        ge = g.op("GreaterOrEqual", g.op("Unsqueeze", x, last), thr)
        code = g.op("ReduceSum", g.op("Cast", ge, to_i=7), last, keepdims_i=0)
        return g.op("Gather", levels, code, axis_i=0)


class StepCodes(torch.autograd.Function):
    """The step count as uint8 codes: a step function with uniform output levels feeds an integer op."""

    @staticmethod
    def forward(ctx, x: Tensor, thr: Tensor) -> Tensor:  # noqa: ANN001
        return (x.unsqueeze(-1) >= thr).sum(-1).to(torch.uint8)

    @staticmethod
    def symbolic(g, x, thr):  # noqa: ANN001, ANN205
        last = g.op("Constant", value_t=torch.tensor([-1], dtype=torch.int64))
        ge = g.op("GreaterOrEqual", g.op("Unsqueeze", x, last), thr)
        return g.op("Cast", g.op("ReduceSum", g.op("Cast", ge, to_i=7), last, keepdims_i=0), to_i=2)  # uint8


class ConvInteger(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xq: Tensor, wq: Tensor, xz: Tensor, stride: list, padding: list, dilation: list,  # noqa: ANN001
                groups: int) -> Tensor:
        acc = F.conv2d(xq.double() - float(xz), wq.double(), None, stride, padding, dilation, groups)
        return acc.round().to(torch.int32)

    @staticmethod
    def symbolic(g, xq, wq, xz, stride, padding, dilation, groups):  # noqa: ANN001, ANN205
        wz = g.op("Constant", value_t=torch.tensor(0, dtype=torch.int8))
        return g.op("ConvInteger", xq, wq, xz, wz, strides_i=stride, pads_i=list(padding) * 2,
                    dilations_i=dilation, group_i=groups)


class MatMulInteger(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xq: Tensor, wt: Tensor, xz: Tensor) -> Tensor:  # noqa: ANN001
        return torch.matmul(xq.double() - float(xz), wt.double()).round().to(torch.int32)

    @staticmethod
    def symbolic(g, xq, wt, xz):  # noqa: ANN001, ANN205
        wz = g.op("Constant", value_t=torch.tensor(0, dtype=torch.int8))
        return g.op("MatMulInteger", xq, wt, xz, wz)


class Lut(torch.autograd.Function):
    @staticmethod
    def forward(ctx, lut: Tensor, codes: Tensor) -> Tensor:  # noqa: ANN001
        return torch.gather(lut, 1, codes.long())

    @staticmethod
    def symbolic(g, lut, codes):  # noqa: ANN001, ANN205
        idx = g.op("Cast", codes, to_i=7)  # int64
        return g.op("GatherElements", lut, idx, axis_i=1)
