"""Quantized layers: drop-in replacements for ``nn.Conv2d`` and ``nn.Linear``, and any subclass of
theirs quantized in place (:func:`wrap_layer`).

The layer owns an optional weight quantizer ``wq`` and an optional input-activation quantizer
``aq``. In training mode the forward uses ``wq(weight)``; in eval mode it uses
``wq.hard(weight)``, so evaluation always measures the deployed model, whatever the method.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from qbench.contract.quant.base import ActivationQuantizer, WeightQuantizer


class QuantLayer:
    """Mixin for quantized layers: ``wq``, ``aq``, and the layer's name in the model."""

    wq: WeightQuantizer | None
    aq: ActivationQuantizer | None
    qname: str
    weight: nn.Parameter

    def _attach(self, wq: WeightQuantizer | None, aq: ActivationQuantizer | None, qname: str) -> None:
        self.wq = wq
        self.aq = aq
        self.qname = qname

    def quantized_input(self, x: Tensor) -> Tensor:
        if self.aq is None:
            return x
        if not self.aq.is_initialized:
            self.aq.initialize(x)
        return self.aq(x)

    def quantized_weight(self) -> Tensor:
        if self.wq is None:
            return self.weight
        if not self.wq.is_initialized:
            self.wq.initialize(self.weight)
        return self.wq(self.weight) if self.training else self.wq.hard(self.weight)

    def hard_weight(self) -> Tensor:
        """The deployed weight (FP weight when the layer's weights are not quantized)."""
        with torch.no_grad():
            return self.weight.detach() if self.wq is None else self.wq.hard(self.weight)

    def effective_weight(self) -> Tensor:
        """The FP weight the layer computes with (before quantization)."""
        return self.weight

    def deploy(self) -> None:
        """Hold the hard weight as the plain weight and drop the weight quantizer (what a
        deployment runs; the activation quantizer stays)."""
        with torch.no_grad():
            self.weight.copy_(self.hard_weight())
        self.wq = None


class QuantConv2d(nn.Conv2d, QuantLayer):
    @classmethod
    def from_float(cls, conv: nn.Conv2d, wq: WeightQuantizer | None, aq: ActivationQuantizer | None,
                   qname: str) -> "QuantConv2d":
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                  conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                  device=conv.weight.device, dtype=conv.weight.dtype)
        new.load_state_dict(conv.state_dict())
        new.train(conv.training)
        new._attach(wq, aq, qname)
        return new

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(self.quantized_input(x), self.quantized_weight(), self.bias)


class QuantLinear(nn.Linear, QuantLayer):
    @classmethod
    def from_float(cls, lin: nn.Linear, wq: WeightQuantizer | None, aq: ActivationQuantizer | None,
                   qname: str) -> "QuantLinear":
        new = cls(lin.in_features, lin.out_features, lin.bias is not None,
                  device=lin.weight.device, dtype=lin.weight.dtype)
        new.load_state_dict(lin.state_dict())
        new.train(lin.training)
        new._attach(wq, aq, qname)
        return new

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(self.quantized_input(x), self.quantized_weight(), self.bias)


def quant_layers(model: nn.Module) -> Iterator[tuple[str, QuantLayer]]:
    """Every quantized layer of ``model`` with its qualified name, in module order."""
    for name, m in model.named_modules():
        if isinstance(m, QuantLayer):
            yield name, m


# -- any other Conv2d / Linear subclass: quantizers attached, the layer's own forward kept --------
#
# timm's Conv2dSame pads dynamically, StdConv2d / ScaledStdConv2d standardise their weight in their
# forward, timm's Linear casts it: swapping such a layer for a QuantConv2d would drop that logic.
# Instead the layer's class becomes a subclass of its own class and of QuantLayer (see
# :func:`wrap_layer`): its forward quantizes the input, then runs the layer's own forward while a
# TorchFunctionMode replaces the weight argument of the F.conv2d / F.linear call it makes (the
# weight the layer really uses, after any standardisation) by the quantized weight.

_WEIGHT_FUNCS = {F.conv1d, F.conv2d, F.conv3d, F.linear}


class _Stop(Exception):
    pass


class _WeightUse(TorchFunctionMode):
    """Inside a wrapped layer's forward: the weight of each F.conv2d / F.linear call -> ``fn(weight)``."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = dict(kwargs or {})
        if func in _WEIGHT_FUNCS:
            if len(args) > 1:
                args = (args[0], self.fn(args[1]), *args[2:])
            elif "weight" in kwargs:
                kwargs["weight"] = self.fn(kwargs["weight"])
        return func(*args, **kwargs)


class QuantWrapped(QuantLayer):
    """Mixin of a wrapped layer's class: ``type(layer)`` is ``Quant<Its class>``, a subclass of both."""

    _qbench_base: type
    _transforms_weight: bool
    _deployed: bool

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        # The input is quantized before the mode is entered: an activation quantizer may call
        # F.linear itself (ASQ's adapter), and its weights are not the layer's.
        qx = self.quantized_input(x)
        with _WeightUse(self._use_weight):
            return super().forward(qx, *args, **kwargs)  # type: ignore[misc]

    def _use_weight(self, w: Tensor) -> Tensor:
        if self._deployed:
            return self.weight
        if self.wq is None:
            return w
        if not self.wq.is_initialized:
            self.wq.initialize(w)
        return self.wq(w) if self.training else self.wq.hard(w)  # type: ignore[attr-defined]

    def effective_weight(self) -> Tensor:
        """The weight the layer's own forward passes to F.conv2d / F.linear (standardised, cast...)."""
        if not self._transforms_weight:
            return self.weight
        return _captured_weight(self)

    def quantized_weight(self) -> Tensor:
        return self._use_weight(self.effective_weight())

    def hard_weight(self) -> Tensor:
        with torch.no_grad():
            if self._deployed:
                return self.weight.detach()
            w = self.effective_weight().detach()
            return w if self.wq is None else self.wq.hard(w)

    def deploy(self) -> None:
        with torch.no_grad():
            self.weight.copy_(self.hard_weight())
        self.wq = None
        self._deployed = True

    def __reduce_ex__(self, protocol: Any) -> Any:  # picklable although its class is made at run time
        return (_new_wrapped, (self._qbench_base,), self.__getstate__())  # type: ignore[attr-defined]


def _captured_weight(layer: nn.Module) -> Tensor:
    """Run the layer's own forward on a minimal input up to its F.conv2d / F.linear call; return the
    weight it passes there."""
    seen: list[Tensor] = []

    def grab(w: Tensor) -> Tensor:
        seen.append(w)
        raise _Stop

    w = layer.weight
    if isinstance(layer, nn.Conv2d):
        size = [d * (k - 1) + 1 for d, k in zip(layer.dilation, layer.kernel_size)]
        x = torch.zeros(1, layer.in_channels, *size, device=w.device, dtype=w.dtype)
    else:
        x = torch.zeros(1, layer.in_features, device=w.device, dtype=w.dtype)
    try:
        with _WeightUse(grab):
            layer._qbench_base.forward(layer, x)  # type: ignore[attr-defined]
    except _Stop:
        pass
    if not seen:
        raise RuntimeError(f"{type(layer).__name__}'s forward never called F.conv2d / F.linear")
    return seen[0]


_WRAPPED: dict[type, type] = {}


def wrapped_class(base: type) -> type:
    """``Quant<base>``: the quantized class of a Conv2d / Linear subclass (one per base class)."""
    if base not in _WRAPPED:
        _WRAPPED[base] = type(f"Quant{base.__name__}", (QuantWrapped, base), {"_qbench_base": base})
    return _WRAPPED[base]


def _new_wrapped(base: type) -> nn.Module:
    cls = wrapped_class(base)
    return cls.__new__(cls)


def wrap_layer(layer: nn.Module, wq: WeightQuantizer | None, aq: ActivationQuantizer | None,
               qname: str) -> nn.Module:
    """Quantize ``layer`` in place, keeping its own forward; returns it (now a :class:`QuantLayer`)."""
    base = type(layer)
    layer._qbench_base = base
    layer._deployed = False
    layer.__class__ = wrapped_class(base)
    with torch.no_grad():
        layer._transforms_weight = _captured_weight(layer) is not layer.weight
    layer._attach(wq, aq, qname)
    return layer
