"""Quantizer building blocks shared by every method plugin.

Plugins subclass :class:`WeightQuantizer` / :class:`ActivationQuantizer` and use the STE helpers
in :mod:`qbench.quant.ste`; the host swaps ``nn.Conv2d`` / ``nn.Linear`` for the quantized layers
in :mod:`qbench.quant.layers` and never needs to know which method it is running.
"""
from .base import ActivationQuantizer, Quantizer, WeightQuantizer
from .layers import QuantConv2d, QuantLayer, QuantLinear, quant_layers
from .ste import grad_scale, round_ste

__all__ = [
    "ActivationQuantizer", "Quantizer", "WeightQuantizer",
    "QuantConv2d", "QuantLayer", "QuantLinear", "quant_layers",
    "grad_scale", "round_ste",
]
