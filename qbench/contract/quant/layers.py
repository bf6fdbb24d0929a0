"""Quantized drop-in replacements for ``nn.Conv2d`` and ``nn.Linear``.

The layer owns an optional weight quantizer ``wq`` and an optional input-activation quantizer
``aq``. In training mode the forward uses ``wq(weight)``; in eval mode it uses
``wq.hard(weight)``, so evaluation always measures the deployed model, whatever the method.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
        if not bool(self.aq.initialized):
            self.aq.initialize(x)
        return self.aq(x)

    def quantized_weight(self) -> Tensor:
        if self.wq is None:
            return self.weight
        if not bool(self.wq.initialized):
            self.wq.initialize(self.weight)
        return self.wq(self.weight) if self.training else self.wq.hard(self.weight)

    def hard_weight(self) -> Tensor:
        """The deployed weight (FP weight when the layer's weights are not quantized)."""
        with torch.no_grad():
            return self.weight.detach() if self.wq is None else self.wq.hard(self.weight)


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
