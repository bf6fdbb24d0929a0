"""Eval-time caches that break deep copies.

timm's LeViT, EfficientFormer(V2) and EfficientViT attention modules keep the attention biases
they computed in eval mode in a dict (``attention_bias_cache``). Computed outside ``no_grad``
those are non-leaf tensors, and ``copy.deepcopy`` of the model fails; computed before a weight
update they go stale. qbench deep-copies FP models after evaluating them, so every model it builds
empties such caches after each forward of their module: the cache is only an optimisation.
"""
from __future__ import annotations

from typing import Any

from torch import nn


def _is_cache(name: str, value: Any) -> bool:
    return "cache" in name and isinstance(value, dict)


def _clear(module: nn.Module, args: Any, out: Any) -> None:
    for name, value in vars(module).items():
        if _is_cache(name, value):
            value.clear()


def clear_caches_after_forward(model: nn.Module) -> nn.Module:
    """Register :func:`_clear` on every module holding a dict cache; returns ``model``."""
    for m in model.modules():
        if any(_is_cache(n, v) for n, v in vars(m).items()):
            m.register_forward_hook(_clear)
    return model
