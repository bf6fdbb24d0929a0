"""Quantizer building blocks shared by every method plugin.

Plugins subclass :class:`WeightQuantizer` / :class:`ActivationQuantizer` and use the STE helpers
in :mod:`qbench.contract.quant.ste`; the host swaps ``nn.Conv2d`` / ``nn.Linear`` for the quantized layers
in :mod:`qbench.contract.quant.layers` and never needs to know which method it is running.
"""
from qbench.contract.quant.base import ActivationQuantizer, Quantizer, WeightQuantizer
from qbench.contract.quant.layers import QuantConv2d, QuantLayer, QuantLinear, quant_layers
from qbench.contract.quant.ste import grad_scale, round_ste

__all__ = [
    "ActivationQuantizer", "Quantizer", "WeightQuantizer",
    "QuantConv2d", "QuantLayer", "QuantLinear", "quant_layers",
    "grad_scale", "round_ste",
]
