"""The deployable model: each quantized layer replaced by ONNX's own quantization ops.

* Both sides on integer grids: ``Clip -> QuantizeLinear`` (uint8 codes, integer zero point) on the
  input, int8 weight codes, ``ConvInteger`` / ``MatMulInteger`` (int32 accumulation), and
  ``DequantizeLinear`` of the accumulator with scale = input scale x weight scale (per channel),
  then the bias: onnxruntime runs the integer kernels.
* Otherwise the input is a uniform grid in plain ops (``Clip, Div, Round, Mul``: see
  :class:`FakeQuant` for why not a Q/DQ pair), a step function (thresholds compared, counted,
  and the code looked up in the levels: ``Gather``), the quantizer's own ops (traced), or untouched
  (weight-only); the weight is ``DequantizeLinear(int8 codes, scale)`` or ``GatherElements`` of a
  LUT by uint8 codes; then a float Conv / MatMul.

The torch forward computes what the ONNX ops compute, so the module is also a reference.
"""
from __future__ import annotations

import contextlib
import copy
import io

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qbench.contract.quant.layers import quant_layers
from qbench.deploy.analyze import LayerPlan
from qbench.deploy.onnx_ops import (
    ConvInteger,
    Dequantize,
    FakeQuant,
    Lut,
    MatMulInteger,
    Quantize,
    Rescale,
    StepCodes,
    Steps,
)

OPSET = 17


def _without_extra_state(m: nn.Module) -> nn.Module:
    """The quantizer, its bits and sign kept as attributes but out of the state dict (the ONNX
    tracer takes only tensors there)."""
    for sub in m.modules():
        cls = type(sub)
        if cls.get_extra_state is not nn.Module.get_extra_state:
            sub.__class__ = type(cls.__name__, (cls,), {"get_extra_state": nn.Module.get_extra_state,
                                                        "set_extra_state": nn.Module.set_extra_state})
    return m


def _pads_same_dynamically(layer: nn.Module) -> bool:
    """Whether a conv pads 'same' for each input size in its own forward (timm's Conv2dSame,
    StdConv2dSame and ScaledStdConv2dSame with ``same_pad``); its ``padding`` attribute is 0 then."""
    try:
        from timm.layers import Conv2dSame
    except ImportError:  # timm is a dependency; without it no layer can be one of its convs
        return False
    return isinstance(layer, Conv2dSame) or bool(getattr(layer, "same_pad", False))


class DeployLayer(nn.Module):
    """One quantized layer as deployed (see the module docstring)."""

    def __init__(self, layer: nn.Module, plan: LayerPlan) -> None:
        super().__init__()
        self.plan = plan
        self.conv = isinstance(layer, nn.Conv2d)
        if self.conv:
            self.stride, self.padding = list(layer.stride), list(layer.padding)
            self.dilation, self.groups = list(layer.dilation), int(layer.groups)
            self.kernel = list(layer.weight.shape[-2:])
        #: timm's Conv2dSame (and *Same convs with ``same_pad``) pad in their own forward, for the
        #: input's size: the deployed conv must pad the same way, or it is another network
        self.same_pad = self.conv and _pads_same_dynamically(layer)
        self.wshape = tuple(layer.weight.shape)
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone(), requires_grad=False)
        a, w = plan.act, plan.weight
        self.aq = _without_extra_state(copy.deepcopy(layer.aq).eval()) if a.scheme == "traced" else None
        if a.scheme == "uniform":
            for n, v in (("a_lo", a.lo), ("a_hi", a.hi), ("a_scale", a.scale)):
                self.register_buffer(n, torch.tensor(v, dtype=torch.float32))
            self.register_buffer("a_zp", torch.tensor(a.zero_point, dtype=torch.uint8))
        if a.scheme == "steps":
            self.register_buffer("a_thr", a.thresholds.float().clone())
            self.register_buffer("a_levels", a.levels.float().clone())
            self.register_buffer("a_zp", torch.tensor(a.zero_point, dtype=torch.uint8))
        if w is None or w.scheme == "float":
            self.register_buffer("w_float", layer.hard_weight().detach().float().clone())
        elif w.scheme == "uniform":
            codes, scale = w.int_codes, w.int_scale.float()
            self.register_buffer("w_scale", scale if scale.numel() > 1 else scale.reshape(()))
            if plan.integer:
                # the weight codes in the layout the integer op takes; the output scale per channel
                self.register_buffer("w_codes", codes if self.conv else codes.t().contiguous())
                out_scale = (scale.double() * a.scale).float()
                if out_scale.numel() == 1:
                    out_scale = out_scale.reshape(())
                elif self.conv:
                    out_scale = out_scale.reshape(-1, 1, 1)  # broadcasts over (N, C, H, W)
                self.register_buffer("out_scale", out_scale)
            else:
                self.register_buffer("w_codes", codes)
        else:
            self.register_buffer("lut", w.lut.float())
            self.register_buffer("lut_codes", w.lut_codes.reshape(w.lut.shape[0], -1))

    def weight(self) -> Tensor:
        w = self.plan.weight
        if w is None or w.scheme == "float":
            return self.w_float
        if w.scheme == "uniform":
            return Dequantize.apply(self.w_codes, self.w_scale, None, 0)
        return Lut.apply(self.lut, self.lut_codes).reshape(self.wshape)

    def _float_op(self, x: Tensor, w: Tensor) -> Tensor:
        if self.conv:
            return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return F.linear(x, w, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        a = self.plan.act
        if self.plan.integer:
            if a.scheme == "steps":
                xq = StepCodes.apply(x, self.a_thr)
            else:
                xq = Quantize.apply(x, self.a_lo, self.a_hi, self.a_scale, self.a_zp)
            if self.conv:
                xq = self._pad(xq, float(self.a_zp))  # the zero point's code is the real 0
                acc = ConvInteger.apply(xq, self.w_codes, self.a_zp, self.stride, self.padding, self.dilation,
                                         self.groups)
                y = Rescale.apply(acc, self.out_scale)
                return y if self.bias is None else y + self.bias.reshape(1, -1, 1, 1)
            acc = MatMulInteger.apply(xq, self.w_codes, self.a_zp)
            y = Rescale.apply(acc, self.out_scale)
            return y if self.bias is None else y + self.bias
        if a.scheme == "uniform":
            x = FakeQuant.apply(x, self.a_lo, self.a_hi, self.a_scale)
        elif a.scheme == "steps":
            x = Steps.apply(x, self.a_thr, self.a_levels)
        elif a.scheme == "traced":
            x = self.aq(x)
        if self.conv:
            x = self._pad(x, 0.0)
        return self._float_op(x, self.weight())

    def _pad(self, x: Tensor, value: float) -> Tensor:
        """The conv's own 'same' padding, after the activation quantizer as in qbench's model (the
        quantizer sees the layer's input; a data-dependent one, like ASQ's, must not see zeros)."""
        if not self.same_pad:
            return x
        from timm.layers import pad_same

        return pad_same(x, self.kernel, self.stride, self.dilation, value=value)


def deploy_model(model: nn.Module, plans: list[LayerPlan]) -> nn.Module:
    """A copy of ``model`` (eval) with every quantized layer replaced by its :class:`DeployLayer`."""
    dep = copy.deepcopy(model).eval()
    by_name = {p.name: p for p in plans}
    modules = dict(dep.named_modules())
    for name, layer in list(quant_layers(dep)):
        parent_name, _, child = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else dep, child, DeployLayer(layer, by_name[name]))
    return dep


class _Ctx:
    """What a plugin's autograd.Function forward may touch on its ctx when called directly."""

    needs_input_grad = ()

    def save_for_backward(self, *tensors: Tensor) -> None:
        pass

    def mark_non_differentiable(self, *tensors: Tensor) -> None:
        pass

    def set_materialize_grads(self, value: bool) -> None:
        pass


@contextlib.contextmanager
def _plain_autograd_functions():  # noqa: ANN202
    """A plugin's torch.autograd.Function (an STE with a custom backward) has no ONNX symbolic;
    for export its forward runs as plain ops, which the tracer records (its backward is irrelevant)."""
    patched = []
    todo = list(torch.autograd.Function.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith(("torch.", __name__)) or hasattr(cls, "symbolic"):
            continue
        separate = cls.setup_context is not torch.autograd.Function.setup_context

        def apply(*args, _cls=cls, _sep=separate):  # noqa: ANN001, ANN202
            return _cls.forward(*args) if _sep else _cls.forward(_Ctx(), *args)
        patched.append((cls, cls.__dict__.get("apply")))
        cls.apply = staticmethod(apply)
    try:
        yield
    finally:
        for cls, old in patched:
            if old is None:
                del cls.apply
            else:
                cls.apply = old


def to_onnx(dep: nn.Module, sample: Tensor) -> bytes:
    """The deploy model as ONNX bytes (dynamic batch). Constant folding is off so that weight codes
    and LUTs stay in the file as codes; onnxruntime folds what it may when it loads the model."""
    import warnings

    f = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), _plain_autograd_functions():
        warnings.simplefilter("ignore")
        torch.onnx.export(dep, (sample,), f, dynamo=False, opset_version=OPSET, do_constant_folding=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return f.getvalue()
